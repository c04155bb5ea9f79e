"""HashiCorp Vault / OpenBao transit backend: a customer-managed key wraps the data key.

Envelope encryption: secrets stay encrypted locally with the AES-256-GCM data key
(:mod:`aggregator.security.crypto`); the data key itself is stored only *wrapped* by a
Vault transit key (``vault:v<n>:...`` in the key file or ``AGGREGATOR_ENCRYPTION_KEY``).
At start-up the server asks Vault to unwrap it once. Revoking the transit key (or the
server's token) makes every stored secret unreadable; rotating the transit key and
re-wrapping (:meth:`VaultTransit.rewrap`) needs no re-encryption of the database.

Settings: ``AGGREGATOR_VAULT_URL`` (or ``VAULT_ADDR``), ``AGGREGATOR_VAULT_TOKEN`` (or
``VAULT_TOKEN``), ``AGGREGATOR_VAULT_TRANSIT_MOUNT`` (``transit``),
``AGGREGATOR_VAULT_TRANSIT_KEY`` (``aggregator``), ``AGGREGATOR_VAULT_NAMESPACE``.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING, Any

from aggregator.core.errors import ConfigError

if TYPE_CHECKING:
    from aggregator.settings import Settings

PREFIX = "vault:"


def is_wrapped(text: str) -> bool:
    """Whether a stored key is a Vault transit ciphertext."""
    return text.strip().startswith(PREFIX)


class VaultError(ConfigError):
    """Vault refused or could not be reached; the message never holds a token or key."""


class VaultTransit:
    """Wraps and unwraps data keys with one transit key."""

    def __init__(
        self,
        url: str,
        token: str | None,
        mount: str = "transit",
        key: str = "aggregator",
        namespace: str | None = None,
        timeout: int = 10,
    ) -> None:
        import hvac

        self.url = url
        self.mount = mount
        self.key = key
        self.client = hvac.Client(url=url, token=token, namespace=namespace, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultTransit | None:
        """The backend the settings configure, or None."""
        url = settings.vault_url or os.environ.get("VAULT_ADDR")
        if not url:
            return None
        token = settings.vault_token.get_secret_value() if settings.vault_token else None
        return cls(
            url,
            token or os.environ.get("VAULT_TOKEN"),
            settings.vault_transit_mount,
            settings.vault_transit_key,
            settings.vault_namespace,
        )

    def _call(self, doing: str, fn: Any, **kwargs: Any) -> Any:
        import hvac.exceptions
        import requests

        try:
            return fn(mount_point=self.mount, **kwargs)
        except hvac.exceptions.Forbidden:
            raise VaultError(
                f"Vault at {self.url} refused to {doing} with transit key {self.key!r}: "
                "check the token's policy"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise VaultError(
                f"Vault at {self.url}: no transit key {self.key!r} at mount {self.mount!r}"
            ) from None
        except hvac.exceptions.VaultError as exc:
            errors = "; ".join(str(e) for e in (exc.errors or []))[:300]
            raise VaultError(f"Vault at {self.url} could not {doing}: {errors}") from None
        except requests.RequestException as exc:
            raise VaultError(
                f"Vault at {self.url} is unreachable ({type(exc).__name__}); "
                "check AGGREGATOR_VAULT_URL"
            ) from None

    def ensure_key(self) -> None:
        """Create the transit key (aes256-gcm96) when it does not exist."""
        import hvac.exceptions

        transit = self.client.secrets.transit
        try:
            transit.read_key(name=self.key, mount_point=self.mount)  # type: ignore[no-untyped-call]
        except hvac.exceptions.InvalidPath:
            self._call("create the key", transit.create_key, name=self.key, key_type="aes256-gcm96")

    def wrap(self, data_key: bytes) -> str:
        """``vault:v<n>:...``: the data key encrypted by the transit key."""
        plaintext = base64.b64encode(data_key).decode()
        response = self._call(
            "encrypt", self.client.secrets.transit.encrypt_data, name=self.key, plaintext=plaintext
        )
        return str(response["data"]["ciphertext"])

    def unwrap(self, wrapped: str) -> bytes:
        """The data key inside ``wrapped``."""
        response = self._call(
            "decrypt",
            self.client.secrets.transit.decrypt_data,
            name=self.key,
            ciphertext=wrapped.strip(),
        )
        try:
            return base64.b64decode(response["data"]["plaintext"], validate=True)
        except (binascii.Error, KeyError, TypeError):
            raise VaultError("Vault returned no valid data key") from None

    def rewrap(self, wrapped: str) -> str:
        """``wrapped`` re-encrypted with the newest version of the transit key."""
        response = self._call(
            "rewrap",
            self.client.secrets.transit.rewrap_data,
            name=self.key,
            ciphertext=wrapped.strip(),
        )
        return str(response["data"]["ciphertext"])

    def rotate(self) -> None:
        """Add a new version of the transit key (old versions still decrypt)."""
        self._call("rotate the key", self.client.secrets.transit.rotate_key, name=self.key)
