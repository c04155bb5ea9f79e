"""The Redis response cache (hits, invalidation across workers) and the data preview of a
PostgreSQL destination, on the real PostgreSQL metadata store and Redis."""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import update
from sqlalchemy.engine import make_url

from aggregator.api import create_app
from aggregator.api.cache import ResponseCache
from aggregator.metadata.control_models import Pipeline
from aggregator.settings import Settings
from tests.unit.api.helpers import Api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration
URL = "/api/v1/pipelines"


def _spec(name: str, tmp_path: Path, rows: int = 10) -> dict[str, Any]:
    return {
        "name": name,
        "sources": [{"name": "seq", "type": "test_sequence", "config": {"rows": rows}}],
        "destination": {"type": "sqlite", "config": {"path": str(tmp_path / f"{name}.sqlite")}},
    }


def _cache(api: Api) -> ResponseCache:
    cache = api.app.state.response_cache
    assert isinstance(cache, ResponseCache) and cache.enabled
    return cache


def _names(client: Any, headers: dict[str, str]) -> list[tuple[str, int]]:
    r = client.get(URL, headers=headers)
    assert r.status_code == 200, r.text
    return [(p["name"], p["version"]) for p in r.json()]


def test_pipeline_list_is_cached_and_writes_are_visible_at_once(
    pg_api: Api, clean_redis: str, tmp_path: Path
) -> None:
    editor, viewer = pg_api.headers("editor"), pg_api.headers("viewer")
    r = pg_api.client.post(URL, json={"spec": _spec("alpha", tmp_path)}, headers=editor)
    assert r.status_code == 201, r.text
    alpha = r.json()["id"]
    assert _names(pg_api.client, viewer) == [("alpha", 1)]
    cache = _cache(pg_api)
    before = (cache.hits, cache.misses)
    assert _names(pg_api.client, viewer) == [("alpha", 1)]
    assert (cache.hits, cache.misses) == (before[0] + 1, before[1])
    workspace = pg_api.users["viewer"].workspace_id
    keys = [k.decode() for k in redis.Redis.from_url(clean_redis).scan_iter("aggregator:cache:*")]
    assert any(k.startswith(f"aggregator:cache:e:ws:{workspace}:pipelines:") for k in keys)

    # Served from Redis: a change made behind the API's back is not seen...
    with pg_api.store.session() as s, s.begin():
        s.execute(update(Pipeline).where(Pipeline.id == alpha).values(current_version=7))
    assert _names(pg_api.client, viewer) == [("alpha", 1)]
    # ...until an API write bumps the workspace's version: then the very next read is fresh.
    r = pg_api.client.post(URL, json={"spec": _spec("beta", tmp_path)}, headers=editor)
    assert r.status_code == 201
    assert _names(pg_api.client, viewer) == [("alpha", 7), ("beta", 1)]

    # Another worker process (its own app and cache object, same Redis and database).
    settings = Settings(home=tmp_path / "home", cookie_secure=True, redis_url=clean_redis)
    other = TestClient(create_app(settings, pg_api.store), base_url="https://testserver")
    with other:
        assert _names(other, viewer) == [("alpha", 7), ("beta", 1)]
        r = other.put(f"{URL}/{alpha}", json={"spec": _spec("alpha", tmp_path, 20)}, headers=editor)
        assert r.status_code == 200, r.text
        assert _names(pg_api.client, viewer) == [("alpha", 8), ("beta", 1)]
        assert other.delete(f"{URL}/{alpha}", headers=editor).status_code == 204
        assert _names(pg_api.client, viewer) == [("beta", 1)]
        assert _names(other, viewer) == [("beta", 1)]


def test_connector_catalog_is_cached(pg_api: Api) -> None:
    viewer = pg_api.headers("viewer")
    first = pg_api.client.get("/api/v1/connectors", headers=viewer)
    cache = _cache(pg_api)
    hits = cache.hits
    second = pg_api.client.get("/api/v1/connectors", headers=viewer)
    assert cache.hits == hits + 1
    assert first.json() == second.json()
    names = {(c["kind"], c["name"]) for c in second.json()}
    assert {("source", "test_sequence"), ("destination", "postgres")} <= names
    assert second.json()[0]["config_schema"]["type"] == "object"


def test_cache_falls_back_to_the_database_when_redis_is_unreachable(pg_api: Api) -> None:
    broken = ResponseCache("redis://127.0.0.1:1/0")
    assert broken.get_or_load("scope", "key", lambda: b"[1]") == b"[1]"
    broken.invalidate("scope")  # logged, not raised
    assert (broken.hits, broken.misses) == (0, 0)


@pytest.fixture
def pg_schema(pg_url: str) -> Any:
    schema = f"preview_{uuid.uuid4().hex[:8]}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_preview_of_a_postgres_destination(
    pg_api: Api, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    url = make_url(pg_url)
    connection = {
        "name": "warehouse",
        "connector": "postgres",
        "kind": "destination",
        "config": {
            "host": url.host,
            "port": url.port,
            "database": url.database,
            "user": url.username,
            **({"password": url.password} if url.password else {}),
            "schema": pg_schema,
        },
    }
    editor = pg_api.headers("editor")
    r = pg_api.client.post("/api/v1/connections", json=connection, headers=editor)
    assert r.status_code == 201, r.text
    spec = {
        "name": "to_pg",
        "sources": [
            {
                "name": "seq",
                "type": "test_sequence",
                "config": {"rows": 60, "batch": 25},
                "streams": [{"name": "numbers", "primary_key": ["id"], "cursor_field": "id"}],
            }
        ],
        "destination": {"connection": "warehouse"},
    }
    r = pg_api.client.post(URL, json={"spec": spec}, headers=editor)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    run = pg_api.client.post(f"{URL}/{pid}/runs", json={}, headers=pg_api.headers("operator"))
    run_id = run.json()["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = pg_api.client.get(f"/api/v1/runs/{run_id}", headers=editor).json()["status"]
        if status != "running":
            break
        time.sleep(0.05)
    assert status == "succeeded"

    viewer = pg_api.headers("viewer")

    def preview(**params: Any) -> Any:
        return pg_api.client.get(
            f"{URL}/{pid}/streams/numbers/preview", params=params, headers=viewer
        )

    page = preview(filter="amount >= 0.5 and id not between 52 and 58", sort="-id", limit=3)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [r["id"] for r in body["rows"]] == [60, 59, 51] and body["has_more"]
    assert body["rows"][0]["amount"] == "0.60"
    assert [c["name"] for c in body["columns"]][:2] == ["id", "amount"]
    counted = preview(filter="id in (1, 2, 3) or (id >= 58 and amount is not null)", count="true")
    assert counted.json()["total"] == 6
    bad = preview(filter="id = 'abc'")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_filter"
    assert "destination refused the filter" in bad.json()["error"]["message"]
    assert url.password is None or url.password not in bad.text
    with psycopg.connect(pg_url) as con:
        (count,) = con.execute(f'SELECT count(*) FROM "{pg_schema}".numbers').fetchone()
    assert count == 60  # nothing written by the read-only preview
