"""Dependencies: the platform, a DB session, the caller (principal) and permission checks.

Every route declares exactly one of :func:`requires` (a permission) or :data:`Public`;
``tests/unit/api/test_rbac_matrix.py`` walks every route with every role.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from hashlib import sha256
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.security import identity, tokens
from aggregator.security.audit import AuditContext
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission

ACCESS_COOKIE = "agg_access"
REFRESH_COOKIE = "agg_refresh"
CSRF_COOKIE = "agg_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE = {"GET", "HEAD", "OPTIONS"}


async def get_platform(request: Request) -> Platform:
    """The application's platform (async: no worker-thread hop for a dictionary lookup)."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_session(request: Request, platform: PlatformDep) -> Iterator[Session]:
    """An ORM session for this request. After a state-changing request the cache of checked
    sessions is emptied (it may have ended a session or changed a user)."""
    try:
        with platform.store.session() as s:
            yield s
    finally:
        if request.method not in _SAFE:
            platform.principals.clear()


SessionDep = Annotated[Session, Depends(get_session)]


def client_ip(request: Request, platform: Platform) -> str:
    """The caller's IP (X-Forwarded-For only when the proxy is trusted)."""
    if platform.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else "unknown"


def csrf_token_for(platform: Platform, session_id: str) -> str:
    """The CSRF token of a session: an HMAC, so it cannot be forged without the key."""
    return hmac.new(platform.jwt_key.encode(), f"csrf:{session_id}".encode(), sha256).hexdigest()


def rate_limit(platform: Platform, *keys: str) -> None:
    """Count one request for each key (one Redis round trip); 429 with Retry-After when
    any is over the limit."""
    decision = platform.limiter.hit_many(list(keys), platform.settings.rate_limit_per_minute, 60)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests; slow down",
            {"Retry-After": str(decision.retry_after)},
        )


def _unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def current_principal(request: Request, platform: PlatformDep, s: SessionDep) -> Principal:
    """Authenticate by API key, bearer access token, or the access cookie (+ CSRF); then
    count the request against the IP's and the principal's limits together (a refused
    attempt counts against the IP)."""
    ip_key = f"ip:{client_ip(request, platform)}"
    try:
        principal = _authenticate(request, platform, s)
    except ApiError:
        rate_limit(platform, ip_key)
        raise
    subject = f"key:{principal.api_key_id}" if principal.api_key_id else f"user:{principal.user_id}"
    rate_limit(platform, ip_key, subject)
    request.state.principal = principal
    return principal


def _authenticate(request: Request, platform: Platform, s: Session) -> Principal:
    header = request.headers.get("authorization", "")
    presented = request.headers.get("x-api-key") or (
        header[7:].strip() if header.lower().startswith("bearer ") else ""
    )
    principal: Principal | None
    if presented and tokens.api_key_prefix(presented):
        principal = identity.principal_from_api_key(s, presented)
        s.commit()  # last_used_at
        if principal is None:
            raise _unauthorized("invalid, expired or revoked API key")
    else:
        via_cookie = not presented
        token = presented or request.cookies.get(ACCESS_COOKIE, "")
        if not token:
            raise _unauthorized()
        try:
            claims = tokens.decode_access_token(platform.jwt_key, token)
        except tokens.InvalidToken:
            raise _unauthorized("invalid or expired token") from None
        cached = request.method in _SAFE  # writes always check the database
        principal = platform.principals.get(claims.session_id, claims.user_id) if cached else None
        if principal is None:
            principal = identity.principal_from_access(
                s, claims, platform.settings.require_admin_mfa
            )
            if principal is None:
                raise _unauthorized("session ended")
            platform.principals.put(claims.session_id, claims.user_id, principal)
        if via_cookie and request.method not in _SAFE:
            expected = csrf_token_for(platform, claims.session_id)
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                raise ApiError(403, "csrf_failed", "missing or invalid CSRF token")
    return principal


class Authorize:
    """A route's permission: authenticates, then checks the principal holds ``permission``.

    ``None`` means any authenticated principal (``/auth/me``, ``/auth/logout``).
    """

    def __init__(self, permission: Permission | None) -> None:
        self.permission = permission

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        """Check the permission (async: pure computation, no worker-thread hop)."""
        if self.permission is not None and principal.mfa_setup_required:
            raise ApiError(403, "mfa_required", "set up MFA first (POST /api/v1/auth/mfa/setup)")
        if self.permission is not None and not principal.can(self.permission):
            raise ApiError(403, "forbidden", f"this needs the {self.permission.value} permission")
        return principal


def requires(permission: Permission) -> Principal:
    """Declare a route's permission: ``principal: Annotated[Principal, requires(P.X)]``."""
    return Depends(Authorize(permission))  # type: ignore[no-any-return]


Authenticated = Depends(Authorize(None))


class PublicRoute:
    """Marks a route that needs no authentication (still rate-limited by IP)."""

    def __call__(self, request: Request, platform: PlatformDep) -> None:
        rate_limit(platform, f"ip:{client_ip(request, platform)}")


public_route = PublicRoute()
Public = Depends(public_route)


def audit_context(
    request: Request, platform: Platform, principal: Principal | None
) -> AuditContext:
    """Who and where, for the audit log."""
    return AuditContext(
        actor=principal.actor if principal else "anonymous",
        workspace_id=principal.workspace_id if principal else None,
        ip=client_ip(request, platform),
        request_id=getattr(request.state, "request_id", None),
    )


#: The largest integer a metadata database column holds (SQLite and PostgreSQL BIGINT):
#: integer parameters are bounded by it, so oversized input is a 422, never a driver error.
MAX_DB_INT = 2**63 - 1
