"""The API over the real PostgreSQL (a fresh database per run) and the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from aggregator.metadata.migrate import all_metadata
from aggregator.metadata.store import MetadataStore
from tests.integration.api.pgdb import fresh_database
from tests.unit.api.helpers import Api, make_api

#: Rows the migrations seed (roles, the default workspace, the audit chain's head) and the
#: append-only audit log (its hash chain must stay whole): kept between tests.
KEPT_TABLES = frozenset({"alembic_version", "roles", "workspaces", "audit_events", "audit_head"})


def emptied_tables() -> list[str]:
    """Every metadata table but :data:`KEPT_TABLES`, derived from the models (never rots)."""
    return sorted(t.name for t in all_metadata().sorted_tables if t.name not in KEPT_TABLES)


@pytest.fixture(scope="session")
def pg_metadata_url(pg_url: str) -> Iterator[str]:
    """A fresh, migrated-on-first-use metadata database for this test run."""
    with fresh_database(pg_url) as url:
        yield url


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The test Redis without rate-limit counters of earlier tests."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("aggregator:rl:*"):
        client.delete(key)
    return redis_url


@pytest.fixture
def pg_api(tmp_path: Path, pg_metadata_url: str, clean_redis: str) -> Iterator[Api]:
    """An API on PostgreSQL metadata with Redis rate limits; every table but
    :data:`KEPT_TABLES` emptied per test."""
    store = MetadataStore(pg_metadata_url)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(emptied_tables())} CASCADE"))
    built = make_api(tmp_path / "home", store, redis_url=clean_redis)
    with built.client:
        yield built
    store.engine.dispose()
