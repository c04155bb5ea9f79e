"""TOTP MFA: set up, enable (recovery codes shown once) and the second login step."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from aggregator.api.deps import (
    Authenticated,
    PlatformDep,
    Public,
    SessionDep,
    audit_context,
)
from aggregator.api.errors import ApiError
from aggregator.api.routes.auth import LOGIN_WINDOW, finish_login
from aggregator.api.schemas import MfaCode, MfaSetup, MfaVerify, RecoveryCodes, TokenPair
from aggregator.metadata.control_models import User
from aggregator.security import audit, mfa, tokens
from aggregator.security.identity import Principal

router = APIRouter(prefix="/auth/mfa", tags=["auth"])


def _session_user(s: SessionDep, who: Principal) -> User:
    if who.session_id is None:
        raise ApiError(403, "forbidden", "MFA is managed from a login session, not an API key")
    user = s.get(User, who.user_id)
    assert user is not None
    return user


@router.post("/setup")
def setup(
    platform: PlatformDep, s: SessionDep, who: Annotated[Principal, Authenticated]
) -> MfaSetup:
    """A new TOTP secret; it becomes active with ``/auth/mfa/enable``."""
    secret, uri = mfa.begin_setup(s, platform.box, _session_user(s, who))
    s.commit()
    return MfaSetup(secret=secret, otpauth_uri=uri)


@router.post("/enable")
def enable(
    body: MfaCode,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, Authenticated],
) -> RecoveryCodes:
    """Activate MFA with a first code; returns the recovery codes (shown once)."""
    codes = mfa.enable(s, platform.box, _session_user(s, who), body.code)
    audit.append(s, audit_context(request, platform, who), "auth.mfa_enabled",
                 object_type="user", object_id=who.user_id)  # fmt: skip
    s.commit()
    return RecoveryCodes(recovery_codes=codes)


@router.post("/verify", dependencies=[Public], responses={401: {}, 429: {}})
def verify(
    body: MfaVerify, request: Request, response: Response, platform: PlatformDep, s: SessionDep
) -> TokenPair:
    """The second login step: a TOTP code or a recovery code."""
    try:
        user_id = tokens.decode_mfa_token(platform.jwt_key, body.mfa_token)
    except tokens.InvalidToken:
        raise ApiError(401, "unauthorized", "invalid or expired MFA token") from None
    key = f"mfa:user:{user_id}"
    limit = platform.settings.login_attempts_per_window
    if platform.limiter.count(key, LOGIN_WINDOW) >= limit:
        raise ApiError(429, "rate_limited", "too many wrong codes; try again later")
    user = s.get(User, user_id)
    method = mfa.verify(s, platform.box, user, body.code) if user and user.is_active else None
    if user is None or method is None:
        platform.limiter.hit(key, limit, LOGIN_WINDOW)
        ctx = audit_context(request, platform, None)
        audit.append(s, ctx, "auth.mfa", outcome="failure", object_type="user", object_id=user_id)
        s.commit()
        raise ApiError(401, "invalid_code", "the code is wrong or expired")
    platform.limiter.reset(key, LOGIN_WINDOW)
    return finish_login(request, response, platform, s, user, f"password+{method}")
