"""Pooled PostgreSQL connections: bounded, reused within a run, replaced when broken, closed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg
import pyarrow as pa
import pytest

from aggregator.connectors.postgres import PostgresSource
from aggregator.connectors.postgres.connection import Pools, PostgresConnection
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.errors import ConnectorError
from aggregator.core.messages import Records
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec
from tests.integration.databases.pg import PgSchema, pg_schema

pytestmark = pytest.mark.integration

TABLES = ("a", "b", "c", "d")
ROWS = 20_000


def with_app(url: str, database: str | None, app: str) -> str:
    parts = urlsplit(url)
    path = f"/{database}" if database else parts.path
    query = (parts.query + "&" if parts.query else "") + f"application_name={app}"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A private database, so the server's session counter counts only this test's."""
    name = f"pool_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def backends(admin: psycopg.Connection[tuple[int]], app: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]
    ).fetchone()
    assert row is not None
    return int(row[0])


def sessions(admin: psycopg.Connection[tuple[int]], database: str) -> int:
    """Sessions ever opened in ``database``, once every backend there has ended (a backend
    reports its session when it exits)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]
        ).fetchone()
        if row is not None and row[0] == 0:
            break
        time.sleep(0.02)
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT sessions FROM pg_stat_database WHERE datname = %s", [database]
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_parallel_reads_stay_within_the_pool_and_reuse_it(
    pg_url: str, database: str, store: MetadataStore, tmp_path: Path
) -> None:
    app = f"agg_{uuid.uuid4().hex[:8]}"
    url = with_app(pg_url, database, app)
    with psycopg.connect(url.replace(app, "setup"), autocommit=True) as con:
        for t in TABLES:
            con.execute(
                f"CREATE TABLE {t} AS SELECT g::bigint AS id, md5(g::text) AS v "
                f"FROM generate_series(1, {ROWS}) g"
            )
            con.execute(f"ALTER TABLE {t} ADD PRIMARY KEY (id)")
            con.execute(f"ANALYZE {t}")
    admin: psycopg.Connection[tuple[int]] = psycopg.connect(pg_url, autocommit=True)
    before = sessions(admin, database)
    most, stop = 0, threading.Event()

    def sample() -> None:
        nonlocal most
        with psycopg.connect(pg_url, autocommit=True) as watcher:
            while not stop.is_set():
                most = max(most, backends(watcher, app))
                time.sleep(0.002)

    watcher = threading.Thread(target=sample)
    watcher.start()
    spec = PipelineSpec.model_validate(
        {
            "name": "pooled",
            "sources": [
                {
                    "name": "db",
                    "type": "postgres",
                    # 10 block ranges per table, 4 readers wanted, 2 connections allowed
                    "config": {"url": url, "parallel": 4, "range_rows": 2000, "pool_size": 2},
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "out.duckdb")}},
            "engine": {"concurrency": 4},
        }
    )
    try:
        record = LocalEngine(store).run(spec)
    finally:
        stop.set()
        watcher.join()
    assert record.status == "succeeded", record.error
    # closed at the end of the run: no backend of ours is left
    deadline = time.monotonic() + 5
    while backends(admin, app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backends(admin, app) == 0
    opened = sessions(admin, database) - before
    admin.close()
    # psycopg (catalog, plans, snapshot exports) and ADBC (range reads): 2 each at once, at
    # most; ADBC's driver also opens one short-lived connection to load the type catalog.
    # One connection per query would have opened 33 (4 tables x (catalog, plan, export,
    # 4 readers) + the stream listing, + ADBC's catalog connection per reader)
    assert most <= 4
    assert 2 <= opened <= 5
    with duckdb.connect(str(tmp_path / "out.duckdb")) as out:
        for t in TABLES:
            assert out.execute(
                f"SELECT count(*), sum(id), count(DISTINCT v) FROM {t}"
            ).fetchone() == (
                ROWS,
                ROWS * (ROWS + 1) // 2,
                ROWS,
            )


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def test_a_broken_pooled_connection_is_replaced(db: PgSchema, pg_url: str) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g")
    app = f"agg_{uuid.uuid4().hex[:8]}"
    src = PostgresSource.from_config(db.source(url=with_app(pg_url, None, app)))
    assert isinstance(src, PostgresSource)
    stream = ConfiguredStream(name="t", sync_mode=SyncMode.FULL_REFRESH)

    def read() -> pa.Table:
        batches = [m.batch for m in src.read(stream, None) if isinstance(m, Records)]
        return pa.Table.from_batches(batches).sort_by("id")

    first = read()
    assert first.num_rows == 500
    killed = {
        r[0]
        for r in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app])
    }
    assert len(killed) == 2  # one idle psycopg and one idle ADBC connection, kept for reuse
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        [app],
    )
    deadline = time.monotonic() + 5
    while backends(db.con, app) and time.monotonic() < deadline:  # type: ignore[arg-type]
        time.sleep(0.02)
    assert read().equals(first)  # both broken connections were found out and replaced
    now = {
        r[0]
        for r in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app])
    }
    assert len(now) == 2 and not now & killed
    assert src.pools.psycopg.open_connections == 1 and src.pools.adbc.open_connections == 1
    src.close()
    deadline = time.monotonic() + 5
    while backends(db.con, app) and time.monotonic() < deadline:  # type: ignore[arg-type]
        time.sleep(0.02)
    assert backends(db.con, app) == 0  # type: ignore[arg-type]


def test_an_exhausted_pool_says_to_raise_pool_size(pg_url: str) -> None:
    config = PostgresConnection.model_validate({"url": pg_url, "pool_size": 2})
    pools = Pools(config, "postgres source")
    pool = pools.psycopg
    pool.wait_seconds = 0.3
    try:
        with pool.connection() as con, pool.connection() as other:
            assert con.execute("SELECT 1").fetchone() == (1,) and other is not con
            with pytest.raises(ConnectorError, match=r"all 2 pooled connections .* `pool_size`"):
                pool.acquire()
        with pool.connection() as again:  # given back: a connection is lent again
            assert again in (con, other)
            assert pool.open_connections == 2
    finally:
        pools.close()
    assert con.closed and other.closed


def test_wrong_password_fails_at_once_with_the_server_message(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    # the test server checks passwords of this role (scram-sha-256 in its pg_hba.conf)
    netloc = f"agg_password:wrong-secret@{parts.hostname}:{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    pools = Pools(PostgresConnection.model_validate({"url": url}), "postgres source")
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        pools.adbc.acquire()
    assert time.monotonic() - started < 5
    assert "check user and password" in caught.value.message
    assert "wrong-secret" not in caught.value.message
    assert pools.adbc.open_connections == 0
    pools.close()
