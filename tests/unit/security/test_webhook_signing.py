"""Webhook signatures: HMAC-SHA256 over ``"<t>." + body``, checked for freshness."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from aggregator.security.webhook_signing import SignatureError, sign, signature, verify

pytestmark = pytest.mark.unit
SECRET = "whsec-0123456789abcdefghijkl"
BODY = b'{"id":"evt","type":"run.failed"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1700000000, BODY) == expected
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_verify_accepts_fresh_and_rotation_headers() -> None:
    header = sign(SECRET, BODY, 1700000000)
    assert verify(SECRET, header, BODY, now=1700000100) == 1700000000
    old = signature("the-previous-secret-xxxxxxxx", 1700000000, BODY)
    assert verify(SECRET, f"{header},v1={old}", BODY, now=1700000000) == 1700000000


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, BODY, 1700000000, "missing signature header"),
        ("v1=abc", BODY, 1700000000, "malformed signature header"),
        ("t=1700000000", BODY, 1700000000, "malformed signature header"),
        (sign(SECRET, BODY, 1700000000), BODY + b" ", 1700000000, "signature mismatch"),
        (sign("another-secret-xxxxxxxxxxxx", BODY, 1700000000), BODY, 1700000000,
         "signature mismatch"),
        (sign(SECRET, BODY, 1700000000), BODY, 1700000301, "timestamp outside the tolerance"),
        (sign(SECRET, BODY, 1700000000).replace("t=1700000000", "t=1700000200"), BODY,
         1700000200, "signature mismatch"),
    ],
)  # fmt: skip
def test_verify_refuses(header: str | None, body: bytes, now: float, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, header, body, now=now)
