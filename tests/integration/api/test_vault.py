"""The Vault transit backend against a real Vault (or OpenBao) dev server on loopback.

The server binary comes from ``AGGREGATOR_TEST_VAULT_BIN`` or ``vault``/``bao`` on PATH
(``scripts/build-vault.sh`` builds one from the Go module proxy, which takes about an hour
on a 2-core machine: too long for CI's budget, so ``make test`` leaves these tests out and
``make test-vault`` builds the server and runs them). A missing binary fails the tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from pydantic import SecretStr

from aggregator.core.errors import ConfigError
from aggregator.security import crypto
from aggregator.security.vault import VaultError, VaultTransit
from aggregator.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.vault]
ROOT_TOKEN = "root-token-for-tests"


#: Where scripts/build-vault.sh puts the binary by default.
BUILT = Path.home() / ".cache" / "aggregator" / "vault-v1.21.4"


def _binary() -> str:
    found = os.environ.get("AGGREGATOR_TEST_VAULT_BIN") or shutil.which("vault")
    found = found or shutil.which("bao") or (str(BUILT) if BUILT.exists() else None)
    if not found:
        pytest.fail(
            "no Vault/OpenBao binary: run scripts/build-vault.sh or set AGGREGATOR_TEST_VAULT_BIN"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def vault_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev-mode server (in memory, unsealed) with the transit engine enabled."""
    port = _free_port()
    log = tmp_path_factory.mktemp("vault") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
             f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(log.parent)},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    client = hvac.Client(url=url, token=ROOT_TOKEN, timeout=5)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if client.sys.is_initialized() and not client.sys.is_sealed():
                    break
            except Exception:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Vault did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        client.sys.enable_secrets_engine("transit", path="transit")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _settings(
    tmp_path: Path, url: str, token: str = ROOT_TOKEN, key: str = "aggregator"
) -> Settings:
    return Settings(
        home=tmp_path, vault_url=url, vault_token=SecretStr(token), vault_transit_key=key
    )


def test_wrap_unwrap_rotate_rewrap(vault_url: str) -> None:
    transit = VaultTransit(vault_url, ROOT_TOKEN, key="roundtrip")
    transit.ensure_key()
    transit.ensure_key()  # idempotent
    data_key = crypto.generate_key()
    wrapped = transit.wrap(data_key)
    assert wrapped.startswith("vault:v1:")
    assert crypto.encode_key(data_key) not in wrapped
    assert transit.unwrap(wrapped) == data_key
    transit.rotate()
    rewrapped = transit.rewrap(wrapped)
    assert rewrapped.startswith("vault:v2:")
    assert transit.unwrap(rewrapped) == data_key
    assert transit.unwrap(wrapped) == data_key  # old versions still decrypt


def test_key_file_is_stored_wrapped_and_secrets_round_trip(vault_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, vault_url, key="box")
    box = crypto.load_box(settings)  # development: creates the key file, wrapped
    stored = (tmp_path / crypto.KEY_FILE_NAME).read_text().strip()
    assert stored.startswith("vault:v1:")
    token = box.encrypt(b"db-password", "connection:1")
    again = crypto.load_box(settings)  # a restart unwraps the same data key
    assert again.primary_id == box.primary_id
    assert again.decrypt(token, "connection:1") == b"db-password"
    inline = Settings(
        home=tmp_path / "other", vault_url=vault_url, vault_token=SecretStr(ROOT_TOKEN),
        vault_transit_key="box", encryption_key=SecretStr(stored),
    )  # fmt: skip
    assert crypto.load_box(inline).primary_id == box.primary_id
    with pytest.raises(ConfigError, match="wrapped by Vault: set AGGREGATOR_VAULT_URL"):
        crypto.load_box(Settings(home=tmp_path))


def test_rotation_writes_the_new_key_wrapped(vault_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, vault_url, key="rotation")
    pending = tmp_path / "encryption.key.new"
    crypto.write_key_file(pending, crypto.generate_key(), settings)
    assert pending.read_text().startswith("vault:v1:")
    assert oct(pending.stat().st_mode & 0o777) == "0o600"
    crypto.write_key_file(tmp_path / crypto.KEY_FILE_NAME, crypto.generate_key(), settings)
    box = crypto.load_box(settings)  # loads the key and the pending one
    assert len(box.key_ids()) == 2


def test_refusals_are_clear_and_never_show_the_token(vault_url: str, tmp_path: Path) -> None:
    root = hvac.Client(url=vault_url, token=ROOT_TOKEN)
    VaultTransit(vault_url, ROOT_TOKEN, key="limited").ensure_key()
    root.sys.create_or_update_policy(
        "encrypt-only", 'path "transit/encrypt/limited" { capabilities = ["update"] }'
    )
    limited = root.auth.token.create(policies=["encrypt-only"], ttl="10m")["auth"]["client_token"]
    transit = VaultTransit(vault_url, limited, key="limited")
    wrapped = transit.wrap(crypto.generate_key())
    with pytest.raises(VaultError) as err:
        transit.unwrap(wrapped)
    assert err.value.message == (
        f"Vault at {vault_url} refused to decrypt with transit key 'limited': "
        "check the token's policy"
    )
    assert limited not in err.value.message
    bad = VaultTransit(vault_url, "not-a-token", key="limited")
    with pytest.raises(VaultError, match="refused to encrypt") as err:
        bad.wrap(b"x" * 32)
    assert "not-a-token" not in err.value.message
    missing = VaultTransit(vault_url, ROOT_TOKEN, key="no-such-key")
    with pytest.raises(VaultError, match=r"could not decrypt|no transit key"):
        missing.unwrap(wrapped)
    down = VaultTransit(f"http://127.0.0.1:{_free_port()}", ROOT_TOKEN, timeout=2)
    with pytest.raises(VaultError, match="is unreachable \\(ConnectionError\\)"):
        down.unwrap(wrapped)
