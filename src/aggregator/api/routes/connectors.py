"""The connector catalog with configuration JSON Schemas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from aggregator.api.deps import requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import ConnectorPublic
from aggregator.connectors import registry
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/connectors", tags=["connectors"])
Reader = Annotated[Principal, requires(P.CATALOG_READ)]


def _public(info: registry.ConnectorInfo) -> ConnectorPublic:
    return ConnectorPublic(
        name=info.name,
        kind=info.kind,
        package=info.package,
        description=info.description,
        config_schema=info.cls.spec(),
    )


@router.get("")
def list_connectors(_: Reader) -> list[ConnectorPublic]:
    """Every installed source and destination."""
    return [_public(c) for c in registry.all_connectors()]


@router.get("/{kind}/{name}")
def get_connector(kind: str, name: str, _: Reader) -> ConnectorPublic:
    """One connector and its configuration schema."""
    for info in registry.all_connectors():
        if info.kind == kind and info.name == name:
            return _public(info)
    raise ApiError(404, "not_found", "no such connector")
