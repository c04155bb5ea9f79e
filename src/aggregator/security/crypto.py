"""AES-256-GCM encryption of secrets at rest, with key ids so keys can be rotated.

A ciphertext is ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The key id is the
first 8 bytes (hex) of SHA-256 of the key, so the right key is found without trial
decryption, and a ciphertext written under another key fails with a clear message that
never contains the secret. Associated data binds a ciphertext to its row (a connection's
secrets cannot be pasted into another connection).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aggregator.core.errors import ConfigError
from aggregator.security import vault
from aggregator.settings import Settings

_VERSION = "v1"
_NONCE = 12
KEY_FILE_NAME = "encryption.key"


class DecryptionError(Exception):
    """A ciphertext could not be decrypted (wrong key, tampered, or malformed)."""


def generate_key() -> bytes:
    """A new random 256-bit key."""
    return secrets.token_bytes(32)


def encode_key(key: bytes) -> str:
    """The text form of a key (base64)."""
    return base64.b64encode(key).decode()


def parse_key(text: str) -> bytes:
    """A key from its base64 text form; exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError("an encryption key is 32 random bytes, base64-encoded")
    return key


def key_id(key: bytes) -> str:
    """Short public identifier of a key."""
    return hashlib.sha256(key).hexdigest()[:16]


class SecretBox:
    """Encrypts with the primary key; decrypts with any key it holds."""

    def __init__(self, primary: bytes, others: Iterable[bytes] = ()) -> None:
        self.primary_id = key_id(primary)
        self._keys = {key_id(k): AESGCM(k) for k in (*others, primary)}

    def encrypt(self, plaintext: bytes, aad: str) -> str:
        """Encrypt ``plaintext`` bound to ``aad``."""
        nonce = os.urandom(_NONCE)
        sealed = self._keys[self.primary_id].encrypt(nonce, plaintext, aad.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self.primary_id}.{body}"

    def decrypt(self, token: str, aad: str) -> bytes:
        """Decrypt a value made by :meth:`encrypt` with the same ``aad``."""
        try:
            version, kid, body = token.split(".", 2)
            raw = base64.urlsafe_b64decode(body.encode())
        except (ValueError, binascii.Error):
            raise DecryptionError("malformed ciphertext") from None
        if version != _VERSION:
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        aes = self._keys.get(kid)
        if aes is None:
            raise DecryptionError(f"encrypted with key {kid}, which is not configured")
        try:
            return aes.decrypt(raw[:_NONCE], raw[_NONCE:], aad.encode())
        except InvalidTag:
            raise DecryptionError("ciphertext failed authentication") from None

    def encrypt_json(self, value: Any, aad: str) -> str:
        """Encrypt a JSON-serialisable value."""
        return self.encrypt(json.dumps(value, sort_keys=True).encode(), aad)

    def decrypt_json(self, token: str, aad: str) -> Any:
        """Decrypt a value made by :meth:`encrypt_json`."""
        return json.loads(self.decrypt(token, aad))

    def key_ids(self) -> list[str]:
        """Ids of every key held."""
        return sorted(self._keys)


def key_file(settings: Settings) -> Path:
    """The key file: configured, or ``<home>/encryption.key`` in development."""
    return settings.encryption_key_file or settings.home / KEY_FILE_NAME


def write_key_file(path: Path, key: bytes, settings: Settings | None = None) -> None:
    """Write a key readable by the owner only; wrapped by Vault when Vault is configured."""
    transit = vault.VaultTransit.from_settings(settings) if settings is not None else None
    if transit is not None:
        transit.ensure_key()
        text = transit.wrap(key)
    else:
        text = encode_key(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def read_key(text: str, settings: Settings) -> bytes:
    """A key from its stored form: base64, or a Vault transit ciphertext (unwrapped)."""
    if not vault.is_wrapped(text):
        return parse_key(text)
    transit = vault.VaultTransit.from_settings(settings)
    if transit is None:
        raise ConfigError("the encryption key is wrapped by Vault: set AGGREGATOR_VAULT_URL")
    key = transit.unwrap(text)
    if len(key) != 32:
        raise ConfigError("the key unwrapped by Vault is not 32 bytes")
    return key


def load_box(settings: Settings) -> SecretBox:
    """The box configured by settings.

    Order: ``encryption_key``; else the key file. In development a missing key file is
    created. A leftover ``<key file>.new`` from an interrupted rotation is also loaded, so
    nothing re-encrypted with it becomes unreadable.
    """
    if settings.encryption_key is not None:
        return SecretBox(read_key(settings.encryption_key.get_secret_value(), settings))
    path = key_file(settings)
    if not path.exists():
        if settings.environment == "production":
            raise ConfigError(f"encryption key file {path} does not exist")
        write_key_file(path, generate_key(), settings)
    primary = read_key(path.read_text(), settings)
    pending = path.with_name(path.name + ".new")
    others = [read_key(pending.read_text(), settings)] if pending.exists() else []
    return SecretBox(primary, others)
