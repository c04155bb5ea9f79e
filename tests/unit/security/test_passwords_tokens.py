"""Password policy and hashing; JWT access tokens (tampering, alg=none, expiry); API keys."""

from __future__ import annotations

import base64
import itertools
import json
import time

import jwt
import pytest

from aggregator.security import passwords, tokens
from aggregator.security.rbac import ROLE_PERMISSIONS, Permission, Role, matrix_markdown

pytestmark = pytest.mark.unit
KEY = "k" * 48


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least"),
        ("password1234", "common"),
        ("aaaaaaaaaaaaaaaa", "repetitive"),
        ("alice-was-here-2026", "email"),
    ],
)
def test_policy_rejects(password: str, reason: str) -> None:
    with pytest.raises(passwords.PasswordPolicyError, match=reason):
        passwords.check_policy(password, "alice@example.com")


def test_hash_and_verify() -> None:
    h = passwords.hash_password("correct horse battery")
    assert h.startswith("$argon2id$")
    assert passwords.verify_password(h, "correct horse battery")
    assert not passwords.verify_password(h, "wrong horse battery")
    assert not passwords.verify_password(None, "anything at all")


def test_access_token_round_trip() -> None:
    token = tokens.issue_access_token(KEY, "u1", "s1", 5)
    claims = tokens.decode_access_token(KEY, token)
    assert (claims.user_id, claims.session_id) == ("u1", "s1")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_tokens_are_rejected() -> None:
    good = tokens.issue_access_token(KEY, "u1", "s1", 5)
    header, payload, sig = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    claims["sub"] = "admin"
    forged = [
        f"{header}.{_b64(claims)}.{sig}",  # changed payload
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",  # alg=none
        jwt.encode(claims, "another-key-of-sufficient-length-123456", algorithm="HS256"),
        jwt.encode({**claims, "exp": int(time.time()) - 10}, KEY, algorithm="HS256"),
        jwt.encode({**claims, "aud": "other"}, KEY, algorithm="HS256"),
        "not-a-jwt",
    ]
    for token in forged:
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(KEY, token)


def test_api_key_shape() -> None:
    prefix, key = tokens.new_api_key()
    assert tokens.api_key_prefix(key) == prefix
    assert tokens.api_key_prefix("agk_short_x") is None
    assert tokens.api_key_prefix("Bearer something") is None


def test_roles_are_nested_and_matrix_documented() -> None:
    order = [Role.VIEWER, Role.OPERATOR, Role.EDITOR, Role.ADMIN]
    for lower, higher in itertools.pairwise(order):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher]
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert "| `audit:read` | yes | no | no | no |" in matrix_markdown()
