"""Users (admin only) and the roles with their permissions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select, update

from aggregator.api.deps import PlatformDep, SessionDep, audit_context, requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import RolePublic, UserCreate, UserPublic, UserUpdate
from aggregator.metadata.control_models import AuthSession, Role, User
from aggregator.security import audit, identity
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P
from aggregator.security.rbac import permissions_of

router = APIRouter(tags=["users"])


def _user(s: SessionDep, who: Principal, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None or user.workspace_id != who.workspace_id:
        raise ApiError(404, "not_found", "no such user")
    return user


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/users")
def list_users(
    s: SessionDep, who: Annotated[Principal, requires(P.USERS_READ)]
) -> list[UserPublic]:
    """The workspace's users."""
    query = select(User).where(User.workspace_id == who.workspace_id).order_by(User.email)
    return [_public(u) for u in s.scalars(query)]


@router.post("/users", status_code=201)
def create_user(
    body: UserCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.USERS_WRITE)],
) -> UserPublic:
    """Add a local user (the password must meet the policy)."""
    user = identity.create_user(
        s, body.email, body.password, body.role, who.workspace_id, body.display_name
    )
    audit.append(
        s, audit_context(request, platform, who), "user.created", object_type="user",
        object_id=user.id, details={"email": user.email, "role": user.role},
    )  # fmt: skip
    s.commit()
    return _public(user)


@router.get("/users/{user_id}")
def get_user(
    user_id: str, s: SessionDep, who: Annotated[Principal, requires(P.USERS_READ)]
) -> UserPublic:
    """One user."""
    return _public(_user(s, who, user_id))


def _admins_left(s: SessionDep, workspace_id: str, excluding: str) -> int:
    query = select(func.count()).where(
        User.workspace_id == workspace_id,
        User.role == "admin",
        User.is_active.is_(True),
        User.id != excluding,
    )
    return int(s.scalar(query) or 0)


@router.patch("/users/{user_id}")
def update_user(
    user_id: str,
    body: UserUpdate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.USERS_WRITE)],
) -> UserPublic:
    """Change role, name or active flag; deactivating ends the user's sessions."""
    user = _user(s, who, user_id)
    before = {"role": user.role, "is_active": user.is_active}
    demoting = (body.role not in (None, "admin")) or body.is_active is False
    if user.role == "admin" and demoting and _admins_left(s, user.workspace_id, user.id) == 0:
        raise ApiError(409, "last_admin", "the workspace needs at least one active admin")
    if body.role is not None:
        user.role = body.role
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.is_active is False:
        s.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_reason="user deactivated")
        )
    user.updated_at = datetime.now(UTC)
    audit.append(
        s, audit_context(request, platform, who), "user.updated", object_type="user",
        object_id=user.id,
        details={"before": before, "after": {"role": user.role, "is_active": user.is_active}},
    )  # fmt: skip
    s.commit()
    return _public(user)


@router.delete("/users/{user_id}", status_code=204)
def deactivate_user(
    user_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.USERS_WRITE)],
) -> Response:
    """Deactivate a user (kept for the audit trail)."""
    update_user(user_id, UserUpdate(is_active=False), request, platform, s, who)
    return Response(status_code=204)


@router.get("/roles")
def list_roles(s: SessionDep, _: Annotated[Principal, requires(P.ROLES_READ)]) -> list[RolePublic]:
    """Roles and their permissions (the permission matrix)."""
    return [
        RolePublic(
            name=r.name,
            description=r.description,
            permissions=sorted(p.value for p in permissions_of(r.name)),
        )
        for r in s.scalars(select(Role).order_by(Role.name))
    ]
