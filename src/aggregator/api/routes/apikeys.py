"""API keys of the caller: create (secret shown once), list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from aggregator.api.deps import PlatformDep, SessionDep, audit_context, requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from aggregator.metadata.control_models import ApiKey, User
from aggregator.security import audit, identity
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
Owner = Annotated[Principal, requires(P.APIKEYS_OWN)]


@router.get("")
def list_keys(s: SessionDep, who: Owner) -> list[ApiKeyPublic]:
    """The caller's keys (admins with ``apikeys:admin`` see the workspace's)."""
    query = select(ApiKey).where(ApiKey.workspace_id == who.workspace_id)
    if not who.can(P.APIKEYS_ADMIN):
        query = query.where(ApiKey.user_id == who.user_id)
    rows = s.scalars(query.order_by(ApiKey.created_at))
    return [ApiKeyPublic.model_validate(k, from_attributes=True) for k in rows]


@router.post("", status_code=201)
def create_key(
    body: ApiKeyCreate, request: Request, platform: PlatformDep, s: SessionDep, who: Owner
) -> ApiKeyCreated:
    """A key with scopes no wider than the caller's role; only a logged-in user may create."""
    if who.kind != "user":
        raise ApiError(403, "forbidden", "API keys cannot create API keys")
    owner = s.get(User, who.user_id)
    assert owner is not None
    row, key = identity.create_api_key(s, owner, body.name, body.scopes, body.expires_at)
    audit.append(
        s, audit_context(request, platform, who), "api_key.created", object_type="api_key",
        object_id=row.id, details={"name": row.name, "scopes": row.scopes},
    )  # fmt: skip
    s.commit()
    public = ApiKeyPublic.model_validate(row, from_attributes=True)
    return ApiKeyCreated(**public.model_dump(), key=key)


@router.delete("/{key_id}", status_code=204)
def revoke_key(
    key_id: str, request: Request, platform: PlatformDep, s: SessionDep, who: Owner
) -> Response:
    """Revoke a key at once."""
    row = s.get(ApiKey, key_id)
    mine = row is not None and row.user_id == who.user_id
    if (
        row is None
        or row.workspace_id != who.workspace_id
        or not (mine or who.can(P.APIKEYS_ADMIN))
    ):
        raise ApiError(404, "not_found", "no such API key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.append(
            s, audit_context(request, platform, who), "api_key.revoked", object_type="api_key",
            object_id=row.id, details={"name": row.name},
        )  # fmt: skip
        s.commit()
    return Response(status_code=204)
