"""``aggregator users create-admin``, ``secrets rotate-key``, ``audit verify`` and ``api``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from aggregator.api.services.connections import decrypted_config
from aggregator.cli.main import app
from aggregator.connectors.webhook import store as ingest_store
from aggregator.metadata.control_models import Connection
from aggregator.metadata.ingest_models import IngestStream
from aggregator.metadata.store import MetadataStore
from aggregator.security import crypto
from aggregator.settings import Settings
from tests.unit.api.helpers import PASSWORD, SECRET

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "aggregator.cli.main"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process (a subprocess costs seconds of imports per call)."""
    r = CliRunner().invoke(app, list(args), input=stdin, env=env, catch_exceptions=False)
    return Result(r.exit_code, r.stdout, r.stderr)


def test_create_admin_rotate_key_and_verify(tmp_path: Path) -> None:
    home = Path(os.environ["AGGREGATOR_HOME"])
    r = _cli("users", "create-admin", "--email", "root@example.com", "--password-stdin",
             stdin=PASSWORD + "\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    weak = _cli("users", "create-admin", "--email", "x@example.com", "--password-stdin",
                stdin="short\n")  # fmt: skip
    assert weak.returncode == 2 and "at least" in weak.stderr

    settings = Settings(home=home)
    store = MetadataStore(settings.metadata_database_url())
    box = crypto.load_box(settings)
    with store.session() as s:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        s.add(Connection(
            id="c1", workspace_id="00000000-0000-0000-0000-000000000001", name="v",
            connector="test_vault", kind="source", config={"password": "**********"},
            secrets_ciphertext=box.encrypt_json({"password": SECRET}, "connection:c1"),
            created_at=now, updated_at=now,
        ))  # fmt: skip
        ingest = ingest_store.create_stream(
            s, box, "00000000-0000-0000-0000-000000000001", "orders", "ingest-" + SECRET
        )
        s.commit()
        ingest_id = ingest.id
    old_id = box.primary_id

    r = _cli("secrets", "rotate-key")
    assert r.returncode == 0, r.stderr
    assert "re-encrypted 2 secret(s)" in r.stdout and SECRET not in r.stdout + r.stderr
    new_box = crypto.load_box(settings)
    assert new_box.primary_id != old_id and new_box.key_ids() == [new_box.primary_id]
    with store.session() as s:
        stream = s.get(IngestStream, ingest_id)
        assert stream is not None
        assert ingest_store.stream_secret(new_box, stream) == "ingest-" + SECRET
        row = s.get(Connection, "c1")
        assert row is not None and row.secrets_ciphertext.split(".")[1] == new_box.primary_id
        assert decrypted_config(new_box, row) == {"password": SECRET}
        with pytest.raises(crypto.DecryptionError):
            decrypted_config(box, row)

    r = _cli("audit", "verify")
    assert r.returncode == 0 and "2 event(s)" in r.stdout, r.stdout + r.stderr
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    r = _cli("audit", "verify")
    assert r.returncode == 1 and "event 1 was altered" in r.stderr
    store.engine.dispose()


def test_production_refuses_default_secrets() -> None:
    env = {"AGGREGATOR_ENVIRONMENT": "production", "AGGREGATOR_SECRET_KEY": "changethis"}
    r = CliRunner().invoke(app, ["audit", "verify"], env=env)
    assert r.exit_code != 0
    assert "AGGREGATOR_SECRET_KEY" in f"{r.output}{r.exception}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_api_command_serves_openapi_on_postgres(pg_metadata_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "api", "--port", str(port)],
        env={**os.environ, "AGGREGATOR_METADATA_URL": pg_metadata_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "api did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "checks": {}}
        assert "server" not in health.headers
        spec = httpx.get(f"{base}/api/v1/openapi.json", timeout=5).json()
        assert "/api/v1/connections/{connection_id}/check" in spec["paths"]
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
