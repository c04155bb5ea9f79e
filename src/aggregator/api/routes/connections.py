"""Connections: CRUD, check and discover. Secrets are write-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from aggregator.api.deps import PlatformDep, SessionDep, audit_context, requires
from aggregator.api.schemas import CheckPublic, ConnectionCreate, ConnectionPublic, ConnectionUpdate
from aggregator.api.services import connections as svc
from aggregator.metadata.control_models import Connection
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/connections", tags=["connections"])


def _public(row: Connection) -> ConnectionPublic:
    return ConnectionPublic.model_validate(row, from_attributes=True)


@router.get("")
def list_connections(
    s: SessionDep, who: Annotated[Principal, requires(P.CONNECTIONS_READ)]
) -> list[ConnectionPublic]:
    """The workspace's connections, secrets redacted."""
    query = (
        select(Connection)
        .where(Connection.workspace_id == who.workspace_id)
        .order_by(Connection.name)
    )
    return [_public(r) for r in s.scalars(query)]


@router.post("", status_code=201)
def create_connection(
    body: ConnectionCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_WRITE)],
) -> ConnectionPublic:
    """Create a connection; the config is validated against the connector's schema."""
    ctx = audit_context(request, platform, who)
    return _public(svc.create(s, platform.box, ctx, who.workspace_id, body))


@router.get("/{connection_id}")
def get_connection(
    connection_id: str, s: SessionDep, who: Annotated[Principal, requires(P.CONNECTIONS_READ)]
) -> ConnectionPublic:
    """One connection, secrets redacted."""
    return _public(svc.get(s, who.workspace_id, connection_id))


@router.patch("/{connection_id}")
def update_connection(
    connection_id: str,
    body: ConnectionUpdate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_WRITE)],
) -> ConnectionPublic:
    """Change name or config; send a secret back as ``**********`` to keep it."""
    row = svc.get(s, who.workspace_id, connection_id)
    ctx = audit_context(request, platform, who)
    return _public(svc.update(s, platform.box, ctx, row, body))


@router.delete("/{connection_id}", status_code=204)
def delete_connection(
    connection_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_WRITE)],
) -> Response:
    """Delete a connection."""
    row = svc.get(s, who.workspace_id, connection_id)
    svc.delete(s, audit_context(request, platform, who), row)
    return Response(status_code=204)


@router.post("/{connection_id}/check")
def check_connection(
    connection_id: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_CHECK)],
) -> CheckPublic:
    """Run the connector's check (its message never contains a secret)."""
    return svc.check(platform.box, svc.get(s, who.workspace_id, connection_id))


@router.post("/{connection_id}/discover")
def discover_connection(
    connection_id: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_CHECK)],
) -> dict[str, Any]:
    """The source's streams, columns, keys and cursor candidates."""
    return svc.discover(platform.box, svc.get(s, who.workspace_id, connection_id))
