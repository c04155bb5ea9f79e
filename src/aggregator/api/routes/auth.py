"""Login, token refresh (rotating), logout and the caller's identity.

Tokens come back in the body (API clients) and as cookies (the UI): the access and
refresh cookies are httpOnly, Secure and SameSite=Strict; ``agg_csrf`` is readable by the
UI, which echoes it in ``X-CSRF-Token`` on every unsafe request made with cookies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from aggregator.api.deps import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    CSRF_HEADER,
    REFRESH_COOKIE,
    Authenticated,
    PlatformDep,
    Public,
    SessionDep,
    audit_context,
    client_ip,
    csrf_token_for,
)
from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.api.schemas import (
    LoginRequest,
    MePublic,
    MfaChallenge,
    PasswordChange,
    RefreshRequest,
    TokenPair,
)
from aggregator.metadata.control_models import AuthSession, User
from aggregator.security import audit, identity, tokens
from aggregator.security.identity import IdentityError, Principal

router = APIRouter(prefix="/auth", tags=["auth"])
LOGIN_WINDOW = 900


def _issue(
    platform: Platform, response: Response, user: User, session: AuthSession, refresh: str
) -> TokenPair:
    minutes = platform.settings.access_token_minutes
    access = tokens.issue_access_token(platform.jwt_key, user.id, session.id, minutes)
    csrf = csrf_token_for(platform, session.id)
    days = platform.settings.refresh_token_days
    for name, value, age, http_only, path in (
        (ACCESS_COOKIE, access, minutes * 60, True, "/"),
        (REFRESH_COOKIE, refresh, days * 86400, True, "/api/v1/auth"),
        (CSRF_COOKIE, csrf, days * 86400, False, "/"),
    ):
        response.set_cookie(
            name,
            value,
            max_age=age,
            httponly=http_only,
            path=path,
            secure=platform.settings.cookie_secure,
            samesite="strict",
        )
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=minutes * 60, csrf_token=csrf
    )


@router.post("/login", dependencies=[Public], responses={401: {}, 429: {}})
def login(
    body: LoginRequest, request: Request, response: Response, platform: PlatformDep, s: SessionDep
) -> TokenPair | MfaChallenge:
    """Exchange email and password for tokens (or an MFA challenge). Failures are limited
    per account and per IP, and audited."""
    ip = client_ip(request, platform)
    email = body.email.strip().lower()
    keys = [f"login:ip:{ip}", f"login:email:{email}"]
    limit = platform.settings.login_attempts_per_window
    ctx = audit_context(request, platform, None)
    metrics = request.app.state.metrics
    if any(platform.limiter.count(k, LOGIN_WINDOW) >= limit for k in keys):
        audit.append(s, ctx, "auth.login", outcome="blocked", details={"email": email})
        s.commit()
        metrics.logins.labels("blocked").inc()
        raise ApiError(429, "rate_limited", "too many failed logins; try again later",
                       {"Retry-After": str(LOGIN_WINDOW)})  # fmt: skip
    user = identity.authenticate_password(s, email, body.password)
    if user is None:
        for key in keys:
            platform.limiter.hit(key, limit, LOGIN_WINDOW)
        audit.append(s, ctx, "auth.login", outcome="failure", details={"email": email})
        s.commit()
        metrics.logins.labels("failure").inc()
        raise ApiError(401, "invalid_credentials", "invalid email or password")
    platform.limiter.reset(keys[1], LOGIN_WINDOW)
    if user.mfa_enabled:
        s.commit()
        return MfaChallenge(mfa_token=tokens.issue_mfa_token(platform.jwt_key, user.id))
    return finish_login(request, response, platform, s, user, "password")


def finish_login(
    request: Request,
    response: Response,
    platform: Platform,
    s: SessionDep,
    user: User,
    method: str,
) -> TokenPair:
    """Start a session for an authenticated user and issue its tokens."""
    ip = client_ip(request, platform)
    ctx = audit_context(request, platform, None)
    metrics = request.app.state.metrics
    session, refresh = identity.start_session(
        s, user, platform.settings.refresh_token_days, ip, request.headers.get("user-agent")
    )
    ctx = audit.AuditContext(f"user:{user.email}", user.workspace_id, ctx.ip, ctx.request_id)
    audit.append(
        s, ctx, "auth.login", object_type="session", object_id=session.id,
        details={"method": method},
    )  # fmt: skip
    s.commit()
    metrics.logins.labels("success").inc()
    return _issue(platform, response, user, session, refresh)


@router.post("/refresh", dependencies=[Public], responses={401: {}, 403: {}})
def refresh(
    body: RefreshRequest,
    request: Request,
    response: Response,
    platform: PlatformDep,
    s: SessionDep,
) -> TokenPair:
    """Rotate the refresh token. Reusing an old one revokes the whole session."""
    presented = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise ApiError(401, "unauthorized", "no refresh token")
    ctx = audit_context(request, platform, None)
    try:
        user, session, fresh = identity.rotate_refresh_token(s, presented)
    except IdentityError as exc:
        if exc.code == "token_reuse":
            audit.append(s, ctx, "auth.refresh_reuse", outcome="failure")
            s.commit()
        raise
    if body.refresh_token is None:
        expected = csrf_token_for(platform, session.id)
        if request.headers.get(CSRF_HEADER, "") != expected:
            s.rollback()
            raise ApiError(403, "csrf_failed", "missing or invalid CSRF token")
    s.commit()
    return _issue(platform, response, user, session, fresh)


@router.post("/logout", status_code=204)
def logout(
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, Authenticated],
) -> Response:
    """End the session (its tokens stop working) and clear the cookies."""
    if who.session_id is None:
        raise ApiError(400, "not_a_session", "API keys are revoked, not logged out")
    identity.revoke_session(s, who.session_id, "logout")
    audit.append(s, audit_context(request, platform, who), "auth.logout",
                 object_type="session", object_id=who.session_id)  # fmt: skip
    s.commit()
    response = Response(status_code=204)
    for name, path in ((ACCESS_COOKIE, "/"), (REFRESH_COOKIE, "/api/v1/auth"), (CSRF_COOKIE, "/")):
        response.delete_cookie(name, path=path)
    return response


@router.post("/password", status_code=204, responses={403: {}, 422: {}})
def change_password(
    body: PasswordChange,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, Authenticated],
) -> Response:
    """Change one's password; every other session of the user ends."""
    if who.session_id is None:
        raise ApiError(403, "forbidden", "passwords are changed from a login session")
    user = s.get(User, who.user_id)
    assert user is not None
    ended = identity.change_password(
        s, user, body.current_password, body.new_password, who.session_id
    )
    audit.append(s, audit_context(request, platform, who), "auth.password_changed",
                 object_type="user", object_id=user.id,
                 details={"sessions_ended": ended})  # fmt: skip
    s.commit()
    return Response(status_code=204)


@router.get("/me")
def me(s: SessionDep, who: Annotated[Principal, Authenticated]) -> MePublic:
    """The caller, their role and effective permissions."""
    user = s.get(User, who.user_id)
    assert user is not None
    return MePublic(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        is_active=user.is_active,
        created_at=user.created_at,
        permissions=sorted(p.value for p in who.permissions),
        auth=who.kind,
    )
