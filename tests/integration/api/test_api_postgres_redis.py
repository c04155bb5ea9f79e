"""The API end to end on the real PostgreSQL metadata store and Redis rate limiter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aggregator.security import audit
from aggregator.security.ratelimit import RedisRateLimiter
from tests.unit.api.helpers import SECRET, Api

pytestmark = pytest.mark.integration


def test_login_refresh_and_brute_force_in_redis(pg_api: Api, clean_redis: str) -> None:
    assert isinstance(pg_api.app.state.platform.limiter, RedisRateLimiter)
    ok = pg_api.login("viewer@example.com")
    assert ok.status_code == 200
    rotated = pg_api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": ok.json()["refresh_token"]}
    )
    assert rotated.status_code == 200
    codes = [
        pg_api.login("editor@example.com", f"wrong-guess-{i:03d}").status_code for i in range(6)
    ]
    assert codes == [401] * 5 + [429]
    keys = [k.decode() for k in redis.Redis.from_url(clean_redis).scan_iter("aggregator:rl:*")]
    assert any("login:email:editor@example.com" in k for k in keys)
    ready = pg_api.client.get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"metadata": "ok", "redis": "ok"}}


def test_connection_pipeline_and_run_on_postgres(pg_api: Api, tmp_path: Path) -> None:
    editor = pg_api.headers("editor")
    conn = {"name": "v", "connector": "test_vault", "kind": "source",
            "config": {"password": SECRET}}  # fmt: skip
    r = pg_api.client.post("/api/v1/connections", json=conn, headers=editor)
    assert r.status_code == 201 and SECRET not in r.text
    with pg_api.store.engine.connect() as c:
        stored = c.execute(text("SELECT config::text, secrets_ciphertext FROM connections")).one()
    assert SECRET not in stored[0] and SECRET not in stored[1]
    spec = {
        "name": "pg_api_pipe",
        "sources": [{"name": "seq", "type": "test_sequence", "config": {"rows": 120}}],
        "destination": {"type": "sqlite", "config": {"path": str(tmp_path / "w.sqlite")}},
    }
    pid = pg_api.client.post("/api/v1/pipelines", json={"spec": spec}, headers=editor).json()["id"]
    run_id = pg_api.client.post(
        f"/api/v1/pipelines/{pid}/runs", json={}, headers=pg_api.headers("operator")
    ).json()["run_id"]
    deadline = time.monotonic() + 30
    while True:
        run = pg_api.client.get(f"/api/v1/runs/{run_id}", headers=editor).json()
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "succeeded" and run["streams"][0]["rows_loaded"] == 120
    with pg_api.store.session() as s:
        assert audit.verify(s).ok


def test_audit_rows_cannot_be_changed_on_postgres(pg_api: Api) -> None:
    pg_api.login("viewer@example.com")
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), pg_api.store.engine.begin() as c:
            c.execute(text(statement))
