"""Single sign-on with an OpenID Connect provider (see docs/security.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from aggregator.api.deps import PlatformDep, Public, SessionDep, audit_context
from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.api.routes.auth import finish_login
from aggregator.api.schemas import MfaChallenge, TokenPair
from aggregator.metadata.control_models import User
from aggregator.security import audit, identity, tokens
from aggregator.security.oidc import OidcClient, OidcConfig, OidcError

router = APIRouter(prefix="/auth/oidc", tags=["auth"])
FLOW_COOKIE = "agg_oidc"
FLOW_PATH = "/api/v1/auth/oidc"


def _client(platform: Platform) -> OidcClient:
    client: OidcClient | None = platform.oidc
    if client is None:
        config = OidcConfig.from_settings(platform.settings)
        if config is None:
            raise ApiError(404, "oidc_not_configured", "single sign-on is not configured")
        client = OidcClient(config)
        platform.oidc = client
    return client


@router.get("/login", dependencies=[Public], status_code=302, response_class=RedirectResponse)
def oidc_login(platform: PlatformDep) -> RedirectResponse:
    """Redirect to the identity provider."""
    try:
        url, flow = _client(platform).start(platform.jwt_key)
    except OidcError as exc:
        raise ApiError(502, "oidc_unavailable", str(exc)) from None
    response = RedirectResponse(url, status_code=302)
    # Lax, not Strict: the cookie must come back on the provider's top-level redirect.
    response.set_cookie(
        FLOW_COOKIE, flow, max_age=600, httponly=True, path=FLOW_PATH,
        secure=platform.settings.cookie_secure, samesite="lax",
    )  # fmt: skip
    return response


@router.get("/callback", dependencies=[Public], responses={401: {}, 403: {}})
def oidc_callback(
    request: Request,
    response: Response,
    platform: PlatformDep,
    s: SessionDep,
    code: str = "",
    state: str = "",
    error: str = "",
) -> TokenPair | MfaChallenge:
    """Finish the login: verify, then find (or, if allowed, create) the user by email."""
    ctx = audit_context(request, platform, None)
    flow = request.cookies.get(FLOW_COOKIE, "")
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    try:
        if error or not code:
            raise OidcError(f"the provider refused the login ({error or 'no code'})"[:200])
        claims = _client(platform).finish(platform.jwt_key, flow, code, state)
    except OidcError as exc:
        audit.append(s, ctx, "auth.login", outcome="failure", details={"method": "oidc",
                     "reason": str(exc)})  # fmt: skip
        s.commit()
        raise ApiError(401, "oidc_failed", str(exc)) from None
    email = str(claims.get("email", "")).lower()
    if not email or claims.get("email_verified") is not True:
        raise ApiError(403, "oidc_email_unverified", "the provider did not vouch for an email")
    user = s.scalar(select(User).where(User.email == email))
    if user is None and platform.settings.oidc_allow_signup:
        user = identity.create_user(s, email, None, platform.settings.oidc_default_role)
        audit.append(s, ctx, "user.created", object_type="user", object_id=user.id,
                     details={"email": email, "via": "oidc"})  # fmt: skip
    if user is None or not user.is_active:
        audit.append(s, ctx, "auth.login", outcome="failure",
                     details={"method": "oidc", "email": email})  # fmt: skip
        s.commit()
        raise ApiError(403, "no_account", "no active account for this email")
    if user.mfa_enabled:
        s.commit()
        return MfaChallenge(mfa_token=tokens.issue_mfa_token(platform.jwt_key, user.id))
    return finish_login(request, response, platform, s, user, "oidc")
