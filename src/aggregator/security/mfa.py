"""TOTP multi-factor authentication (RFC 6238 via pyotp) with one-time recovery codes.

A TOTP code is accepted once: the last accepted time step is stored, so a code seen by
a shoulder-surfer cannot be replayed within its 30-second window. Recovery codes are
random (64 bits), shown once, stored as SHA-256 and consumed on use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import pyotp
from sqlalchemy.orm import Session

from aggregator.metadata.control_models import User
from aggregator.security.crypto import SecretBox
from aggregator.security.identity import IdentityError

ISSUER = "Aggregator"
RECOVERY_CODES = 10
_STEP = 30


def _aad(user_id: str) -> str:
    return f"user-mfa:{user_id}"


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def begin_setup(s: Session, box: SecretBox, user: User) -> tuple[str, str]:
    """Store a new (not yet active) secret; returns ``(secret, otpauth URI)``."""
    if user.mfa_enabled:
        raise IdentityError("conflict", "MFA is already enabled")
    secret = pyotp.random_base32()
    user.mfa_secret_ciphertext = box.encrypt(secret.encode(), _aad(user.id))
    s.flush()
    return secret, pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _secret(box: SecretBox, user: User) -> str:
    if user.mfa_secret_ciphertext is None:
        raise IdentityError("mfa_not_set_up", "start MFA setup first")
    return box.decrypt(user.mfa_secret_ciphertext, _aad(user.id)).decode()


def _accept_totp(box: SecretBox, user: User, code: str, now: float | None = None) -> bool:
    totp = pyotp.TOTP(_secret(box, user))
    current = int((now if now is not None else time.time()) // _STEP)
    for step in (current - 1, current, current + 1):
        if step <= (user.mfa_last_step or -1):
            continue
        if hmac.compare_digest(totp.at(step * _STEP), code.strip()):
            user.mfa_last_step = step
            return True
    return False


def enable(s: Session, box: SecretBox, user: User, code: str) -> list[str]:
    """Activate MFA after a first valid code; returns the recovery codes (shown once)."""
    if user.mfa_enabled:
        raise IdentityError("conflict", "MFA is already enabled")
    if not _accept_totp(box, user, code):
        raise IdentityError("invalid_code", "the code is wrong or expired")
    codes = ["-".join(secrets.token_hex(2) for _ in range(4)) for _ in range(RECOVERY_CODES)]
    user.mfa_recovery_hashes = [_hash(c) for c in codes]
    user.mfa_enabled = True
    s.flush()
    return codes


def verify(s: Session, box: SecretBox, user: User, code: str) -> str | None:
    """``"totp"`` or ``"recovery"`` when ``code`` is accepted (a recovery code is used up)."""
    if not user.mfa_enabled:
        return None
    if code.strip().isdigit() and _accept_totp(box, user, code):
        s.flush()
        return "totp"
    digest = _hash(code)
    remaining = list(user.mfa_recovery_hashes or [])
    for stored in remaining:
        if hmac.compare_digest(stored, digest):
            remaining.remove(stored)
            user.mfa_recovery_hashes = remaining
            s.flush()
            return "recovery"
    return None
