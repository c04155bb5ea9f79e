"""The connector catalog with configuration JSON Schemas."""

from __future__ import annotations

from hashlib import sha256
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter

from aggregator.api import cache
from aggregator.api.deps import requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import ConnectorPublic
from aggregator.connectors import registry
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/connectors", tags=["connectors"])
Reader = Annotated[Principal, requires(P.CATALOG_READ)]
_LIST = TypeAdapter(list[ConnectorPublic])


def _public(info: registry.ConnectorInfo) -> ConnectorPublic:
    return ConnectorPublic(
        name=info.name,
        kind=info.kind,
        package=info.package,
        description=info.description,
        config_schema=info.cls.spec(),
    )


@router.get("", response_model=list[ConnectorPublic])
def list_connectors(request: Request, _: Reader) -> Response:
    """Every installed source and destination (cached in Redis when configured)."""
    installed = registry.all_connectors()
    fingerprint = sha256(
        "\n".join(sorted(f"{c.kind}/{c.name}/{c.package}" for c in installed)).encode()
    ).hexdigest()[:16]
    body = cache.get_cache(request).get_or_load(
        cache.CATALOG_SCOPE,
        f"list:{fingerprint}",
        lambda: _LIST.dump_json([_public(c) for c in installed]),
    )
    return Response(body, media_type="application/json")


@router.get("/{kind}/{name}")
def get_connector(kind: str, name: str, _: Reader) -> ConnectorPublic:
    """One connector and its configuration schema."""
    for info in registry.all_connectors():
        if info.kind == kind and info.name == name:
            return _public(info)
    raise ApiError(404, "not_found", "no such connector")
