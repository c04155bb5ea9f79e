"""Login sessions: list and revoke one's own; admins list and revoke any user's.

Sessions belong to people: an API key cannot list or end them (403), so a leaked key
cannot log its owner out or learn where they sign in from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.api.deps import Authenticated, PlatformDep, SessionDep, audit_context, requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import Timestamp
from aggregator.metadata.control_models import AuthSession, User
from aggregator.security import audit, identity
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(tags=["sessions"])


class SessionPublic(BaseModel):
    """A login session (no token material)."""

    id: str
    user_id: str
    created_at: Timestamp
    expires_at: Timestamp
    revoked_at: Timestamp | None
    revoked_reason: str | None
    ip: str | None
    user_agent: str | None
    active: bool
    current: bool


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _public(row: AuthSession, who: Principal) -> SessionPublic:
    active = row.revoked_at is None and _aware(row.expires_at) > datetime.now(UTC)
    return SessionPublic(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
        ip=row.ip,
        user_agent=row.user_agent,
        active=active,
        current=row.id == who.session_id,
    )


def _person(who: Principal) -> None:
    if who.api_key_id is not None:
        raise ApiError(403, "forbidden", "sessions are managed by a logged-in user, not an API key")


def _list(s: Session, user_id: str, include_ended: bool, limit: int) -> list[AuthSession]:
    query = select(AuthSession).where(AuthSession.user_id == user_id)
    if not include_ended:
        query = query.where(
            AuthSession.revoked_at.is_(None), AuthSession.expires_at > datetime.now(UTC)
        )
    return list(s.scalars(query.order_by(AuthSession.created_at.desc()).limit(limit)))


def _workspace_user(s: Session, workspace_id: str, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None or user.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such user")
    return user


def _revoke(
    request: Request, platform: PlatformDep, s: Session, who: Principal, row: AuthSession
) -> Response:
    if row.revoked_at is None:
        identity.revoke_session(s, row.id, f"revoked by {who.actor}"[:100])
        audit.append(
            s, audit_context(request, platform, who), "session.revoked",
            object_type="session", object_id=row.id, details={"user_id": row.user_id},
        )  # fmt: skip
        s.commit()
    return Response(status_code=204)


@router.get("/sessions")
def my_sessions(
    s: SessionDep,
    who: Annotated[Principal, Authenticated],
    include_ended: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SessionPublic]:
    """The caller's sessions, newest first (``current`` marks this one)."""
    _person(who)
    return [_public(r, who) for r in _list(s, who.user_id, include_ended, limit)]


@router.delete("/sessions/{session_id}", status_code=204)
def revoke_my_session(
    session_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, Authenticated],
) -> Response:
    """End one of the caller's sessions (its tokens stop working at once)."""
    _person(who)
    row = s.get(AuthSession, session_id)
    if row is None or row.user_id != who.user_id:
        raise ApiError(404, "not_found", "no such session")
    return _revoke(request, platform, s, who, row)


@router.get("/users/{user_id}/sessions")
def user_sessions(
    user_id: str,
    s: SessionDep,
    who: Annotated[Principal, requires(P.USERS_READ)],
    include_ended: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SessionPublic]:
    """A user's sessions (admin)."""
    user = _workspace_user(s, who.workspace_id, user_id)
    return [_public(r, who) for r in _list(s, user.id, include_ended, limit)]


@router.delete("/users/{user_id}/sessions/{session_id}", status_code=204)
def revoke_user_session(
    user_id: str,
    session_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.USERS_WRITE)],
) -> Response:
    """End a user's session (admin)."""
    user = _workspace_user(s, who.workspace_id, user_id)
    row = s.get(AuthSession, session_id)
    if row is None or row.user_id != user.id:
        raise ApiError(404, "not_found", "no such session")
    return _revoke(request, platform, s, who, row)
