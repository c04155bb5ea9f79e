"""Short-lived JWT access tokens and opaque, hashed refresh tokens and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

ISSUER = "aggregator"
AUDIENCE = "aggregator-api"
ALGORITHM = "HS256"
API_KEY_PREFIX = "agk"


class InvalidToken(Exception):
    """A token is malformed, expired, forged or revoked."""


@dataclass(frozen=True)
class AccessClaims:
    """What an access token asserts."""

    user_id: str
    session_id: str
    expires_at: datetime


def issue_access_token(key: str, user_id: str, session_id: str, minutes: int) -> str:
    """A signed access token for ``user_id`` in session ``session_id``."""
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "sid": session_id,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(key: str, token: str) -> AccessClaims:
    """Verify signature, algorithm, issuer, audience and expiry."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    return AccessClaims(
        str(claims["sub"]), str(claims["sid"]), datetime.fromtimestamp(claims["exp"], UTC)
    )


MFA_AUDIENCE = "aggregator-mfa"


def issue_mfa_token(key: str, user_id: str, minutes: int = 5) -> str:
    """A short token proving the password step passed; only ``/auth/mfa/verify`` accepts it."""
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "aud": MFA_AUDIENCE, "sub": user_id, "iat": now,
              "exp": now + timedelta(minutes=minutes), "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_mfa_token(key: str, token: str) -> str:
    """The user id of a valid MFA token."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=MFA_AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )  # fmt: skip
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    return str(claims["sub"])


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret."""
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """SHA-256 of a high-entropy token (refresh tokens, API keys) as hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare secrets without leaking where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key() -> tuple[str, str]:
    """``(prefix, full key)``; the prefix is public and identifies the key."""
    prefix = f"{API_KEY_PREFIX}_{secrets.token_hex(8)}"
    return prefix, f"{prefix}_{new_secret()}"


def api_key_prefix(key: str) -> str | None:
    """The prefix of a presented API key, or None when it is not shaped like one."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 16:
        return None
    return f"{parts[0]}_{parts[1]}"


def signing_key(secret: str | None, fallback_file: str) -> str:
    """The configured JWT key, or a development key kept in ``fallback_file``."""
    if secret:
        return secret
    path = Path(fallback_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_secret(48))
        path.chmod(0o600)
    return path.read_text().strip()
