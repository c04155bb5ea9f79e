"""AES-256-GCM secret box: round trip, binding, key ids, tampering."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.core.errors import ConfigError
from aggregator.security import crypto
from aggregator.settings import Settings

pytestmark = pytest.mark.unit


def test_round_trip_and_binding() -> None:
    box = crypto.SecretBox(crypto.generate_key())
    token = box.encrypt_json({"password": "hunter2-very-secret"}, "connection:1")
    assert "hunter2" not in token and token.startswith(f"v1.{box.primary_id}.")
    assert box.decrypt_json(token, "connection:1") == {"password": "hunter2-very-secret"}
    with pytest.raises(crypto.DecryptionError, match="authentication"):
        box.decrypt(token, "connection:2")


def test_nonces_differ() -> None:
    box = crypto.SecretBox(crypto.generate_key())
    assert box.encrypt(b"x", "a") != box.encrypt(b"x", "a")


def test_tampered_and_unknown_key() -> None:
    box = crypto.SecretBox(crypto.generate_key())
    token = box.encrypt(b"secret", "a")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(crypto.DecryptionError):
        box.decrypt(flipped, "a")
    other = crypto.SecretBox(crypto.generate_key())
    with pytest.raises(crypto.DecryptionError, match="not configured"):
        other.decrypt(token, "a")
    with pytest.raises(crypto.DecryptionError, match="malformed"):
        box.decrypt("garbage", "a")


def test_old_keys_decrypt_primary_encrypts() -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    token = crypto.SecretBox(old).encrypt(b"s", "a")
    box = crypto.SecretBox(new, [old])
    assert box.decrypt(token, "a") == b"s"
    assert box.encrypt(b"s", "a").split(".")[1] == crypto.key_id(new)


def test_parse_key_rejects_wrong_length() -> None:
    with pytest.raises(ConfigError, match="32 random bytes"):
        crypto.parse_key("c2hvcnQ=")
    key = crypto.generate_key()
    assert crypto.parse_key(crypto.encode_key(key)) == key


def test_development_key_file_is_created_private(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    box = crypto.load_box(settings)
    path = tmp_path / crypto.KEY_FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert crypto.load_box(settings).primary_id == box.primary_id


def test_production_refuses_placeholder_and_missing_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(environment="production", secret_key="changethis")
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="ENCRYPTION_KEY"):
        Settings(environment="production", secret_key="x" * 40)
    ok = Settings(
        environment="production",
        secret_key="x" * 40,
        encryption_key_file=tmp_path / "k",
    )
    with pytest.raises(ConfigError, match="does not exist"):
        crypto.load_box(ok)
