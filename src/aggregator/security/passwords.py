"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256
_COMMON = frozenset(
    {
        "password1234",
        "passwordpassword",
        "123456789012",
        "qwertyuiopas",
        "letmeinletmein",
        "administrator",
        "aggregator123",
        "iloveyou1234",
        "welcome12345",
        "changeme1234",
    }
)
_hasher = PasswordHasher()
# Verified when the user does not exist, so timing does not reveal which emails exist.
_dummy_hash: str | None = None


class PasswordPolicyError(ValueError):
    """A password does not meet the policy; the message says what to change."""


def use_parameters(time_cost: int, memory_cost: int, parallelism: int = 1) -> None:
    """Change the hashing cost (tests use a cheap profile; deployments keep the default)."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    _dummy_hash = None


def check_policy(password: str, email: str = "") -> None:
    """Raise :class:`PasswordPolicyError` when ``password`` is too weak."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"use at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 5:
        raise PasswordPolicyError("this password is too common or too repetitive")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        raise PasswordPolicyError("the password must not contain your email name")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash still costs one verification."""
    global _dummy_hash
    if password_hash is None and _dummy_hash is None:
        _dummy_hash = _hasher.hash("not-a-real-password-used-for-timing")
    try:
        return _hasher.verify(password_hash or _dummy_hash or "", password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash uses outdated parameters."""
    return _hasher.check_needs_rehash(password_hash)
