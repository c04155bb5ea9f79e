"""Identity use cases shared by the API and the CLI: users, sessions, API keys, principals."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aggregator.metadata.control_models import ApiKey, AuthSession, RefreshToken, User
from aggregator.security import passwords, tokens
from aggregator.security.rbac import Permission, Role, permissions_of

DEFAULT_WORKSPACE = "00000000-0000-0000-0000-000000000001"


class IdentityError(Exception):
    """An identity operation was refused; ``code`` is stable, the message is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who makes a request and what they may do."""

    user_id: str
    email: str
    role: str
    workspace_id: str
    kind: str = "user"  # user | api_key
    session_id: str | None = None
    api_key_id: str | None = None
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    mfa_setup_required: bool = False

    def can(self, permission: Permission) -> bool:
        """Whether the principal holds ``permission``."""
        return permission in self.permissions

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.api_key_id:
            return f"api_key:{self.api_key_id} (user:{self.email})"
        return f"user:{self.email}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def principal_for(user: User, **extra: object) -> Principal:
    """A principal with the user's role permissions."""
    values: dict[str, object] = {"permissions": permissions_of(user.role), **extra}
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        workspace_id=user.workspace_id,
        **values,  # type: ignore[arg-type]
    )


def create_user(
    s: Session,
    email: str,
    password: str | None,
    role: str,
    workspace_id: str = DEFAULT_WORKSPACE,
    display_name: str = "",
) -> User:
    """Add a user after checking the role, the email and the password policy."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise IdentityError("invalid_email", "a valid email address is required")
    if role not in {r.value for r in Role}:
        raise IdentityError("invalid_role", f"role must be one of {', '.join(r for r in Role)}")
    if password is not None:
        try:
            passwords.check_policy(password, email)
        except passwords.PasswordPolicyError as exc:
            raise IdentityError("weak_password", str(exc)) from None
    if s.scalar(select(User.id).where(User.email == email)) is not None:
        raise IdentityError("conflict", "a user with this email exists")
    now = _now()
    user = User(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        email=email,
        display_name=display_name,
        password_hash=passwords.hash_password(password) if password else None,
        role=role,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    s.add(user)
    s.flush()
    return user


def authenticate_password(s: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (same cost either way)."""
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user


def change_password(s: Session, user: User, current: str, new: str, keep_session: str) -> int:
    """Check the current password, apply the policy, and end every other session."""
    if not passwords.verify_password(user.password_hash, current):
        raise IdentityError("invalid_credentials", "the current password is wrong")
    try:
        passwords.check_policy(new, user.email)
    except passwords.PasswordPolicyError as exc:
        raise IdentityError("weak_password", str(exc)) from None
    user.password_hash = passwords.hash_password(new)
    user.updated_at = _now()
    result = s.execute(
        update(AuthSession)
        .where(
            AuthSession.user_id == user.id,
            AuthSession.id != keep_session,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=_now(), revoked_reason="password changed")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def start_session(
    s: Session, user: User, days: int, ip: str | None, user_agent: str | None
) -> tuple[AuthSession, str]:
    """A new session and its first refresh token (returned in clear once)."""
    now = _now()
    session = AuthSession(
        id=str(uuid.uuid4()),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(days=days),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    s.add(session)
    refresh = tokens.new_secret()
    s.add(RefreshToken(session_id=session.id, token_hash=tokens.digest(refresh), created_at=now))
    s.flush()
    return session, refresh


def revoke_session(s: Session, session_id: str, reason: str) -> None:
    """Revoke a session (its access and refresh tokens stop working)."""
    s.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=_now(), revoked_reason=reason)
    )


def rotate_refresh_token(s: Session, presented: str) -> tuple[User, AuthSession, str]:
    """Exchange a refresh token for a new one.

    Presenting a token that was already used means it leaked (or a client raced): the
    whole session is revoked, so the thief's copy dies along with the owner's.
    """
    row = s.scalar(select(RefreshToken).where(RefreshToken.token_hash == tokens.digest(presented)))
    if row is None:
        raise IdentityError("invalid_token", "invalid refresh token")
    session = s.get(AuthSession, row.session_id)
    if session is None or session.revoked_at is not None:
        raise IdentityError("invalid_token", "session revoked")
    if row.used_at is not None:
        revoke_session(s, session.id, "refresh token reuse")
        raise IdentityError("token_reuse", "refresh token reuse detected; session revoked")
    if _aware(session.expires_at) <= _now():
        raise IdentityError("invalid_token", "session expired")
    user = s.get(User, session.user_id)
    if user is None or not user.is_active:
        raise IdentityError("invalid_token", "user disabled")
    row.used_at = _now()
    fresh = tokens.new_secret()
    s.add(RefreshToken(session_id=session.id, token_hash=tokens.digest(fresh), created_at=_now()))
    s.flush()
    return user, session, fresh


def principal_from_access(
    s: Session, claims: tokens.AccessClaims, require_admin_mfa: bool = True
) -> Principal | None:
    """The principal of a valid access token whose session is still live.

    An admin without MFA gets no permissions until MFA is set up (``mfa_setup_required``).
    """
    session = s.get(AuthSession, claims.session_id)
    if session is None or session.revoked_at is not None or session.user_id != claims.user_id:
        return None
    user = s.get(User, claims.user_id)
    if user is None or not user.is_active:
        return None
    if require_admin_mfa and user.role == Role.ADMIN and not user.mfa_enabled:
        return principal_for(
            user, session_id=session.id, permissions=frozenset(), mfa_setup_required=True
        )
    return principal_for(user, session_id=session.id)


def create_api_key(
    s: Session,
    owner: User,
    name: str,
    scopes: Sequence[str] | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """A key acting for ``owner`` with ``scopes`` (a subset of the owner's permissions)."""
    allowed = permissions_of(owner.role)
    known = {p.value for p in Permission}
    if scopes is not None and not set(scopes) <= known:
        raise IdentityError("invalid_scope", "unknown scope; see GET /api/v1/roles")
    wanted = {Permission(p) for p in scopes} if scopes is not None else set(allowed)
    if not wanted <= allowed:
        extra = ", ".join(sorted(p.value for p in wanted - allowed))
        raise IdentityError("forbidden", f"scopes beyond the owner's role: {extra}")
    if expires_at is not None and _aware(expires_at) <= _now():
        raise IdentityError("invalid_expiry", "expires_at must be in the future")
    prefix, key = tokens.new_api_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        workspace_id=owner.workspace_id,
        user_id=owner.id,
        name=name,
        prefix=prefix,
        secret_hash=tokens.digest(key),
        scopes=sorted(p.value for p in wanted),
        created_at=_now(),
        expires_at=expires_at,
    )
    s.add(row)
    s.flush()
    return row, key


def principal_from_api_key(s: Session, presented: str) -> Principal | None:
    """The principal of a live API key: its scopes, capped by the owner's current role."""
    prefix = tokens.api_key_prefix(presented)
    if prefix is None:
        return None
    key = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    if not tokens.constant_time_equal(key.secret_hash, tokens.digest(presented)):
        return None
    if key.expires_at is not None and _aware(key.expires_at) <= _now():
        return None
    user = s.get(User, key.user_id)
    if user is None or not user.is_active:
        return None
    key.last_used_at = _now()
    scopes = {Permission(p) for p in key.scopes} & permissions_of(user.role)
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        workspace_id=key.workspace_id,
        kind="api_key",
        api_key_id=key.id,
        permissions=frozenset(scopes),
    )
