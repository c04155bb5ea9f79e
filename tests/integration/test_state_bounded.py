"""``_aggregator_state`` stays one row per stream however many commits a run makes
(``--follow`` commits every cycle), in DuckDB and PostgreSQL, with streams committing at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aggregator.connectors.duckdb import DuckDBDestination
from aggregator.connectors.postgres import PostgresDestination
from aggregator.connectors.sdk import DestinationSession
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from tests.integration.databases.pg import PgSchema, pg_schema

pytestmark = pytest.mark.integration

COMMITS = 60


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def commit_many(session: DestinationSession, names: list[str]) -> None:
    """Each stream, in its own thread, writes a row and commits ``COMMITS`` states."""
    failures: list[BaseException] = []

    def work(name: str) -> None:
        try:
            stream = ConfiguredStream(
                name, SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("id",)
            )
            writer = session.writer(stream, "run-1")
            schema = pa.schema([pa.field("id", pa.int64()), pa.field("n", pa.int64())])
            if writer.current_schema() is None:
                writer.apply_schema(schema)
            for i in range(COMMITS):
                writer.write(pa.record_batch([pa.array([i % 5]), pa.array([i])], schema=schema))
                writer.commit({"lsn": f"0/{i + 1:X}"})
            writer.finish({"lsn": f"0/{COMMITS:X}"})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def check(session: DestinationSession, rows: list[tuple[Any, ...]], names: list[str]) -> None:
    assert sorted(rows) == [(n, 1) for n in sorted(names)]
    for name in names:
        assert session.read_state(name) == {"lsn": f"0/{COMMITS:X}"}


def test_duckdb_keeps_one_state_row_per_stream(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    dest = DuckDBDestination.from_config({"path": str(tmp_path / "s.duckdb")})
    session = dest.open("follow")  # type: ignore[attr-defined]
    try:
        commit_many(session, names)
        count = (
            "SELECT stream, count(*) FROM _aggregator_state WHERE pipeline = 'follow' GROUP BY 1"
        )
        # before the session's closing compaction: bounded while the run goes on
        check(session, session.con.execute(count).fetchall(), names)
        session.reset_state("a")
        assert session.read_state("a") is None and session.read_state("b") is not None
    finally:
        session.close()


def test_postgres_keeps_one_state_row_per_stream(db: PgSchema) -> None:
    names = ["a", "b", "c"]
    dest = PostgresDestination.from_config(db.destination())
    session = dest.open("follow")  # type: ignore[attr-defined]
    try:
        commit_many(session, names)
        rows = db.execute(
            "SELECT stream, count(*)::int FROM _aggregator_state WHERE pipeline = 'follow' "
            "GROUP BY 1"
        )
        check(session, rows, names)
        assert db.execute("SELECT count(*)::int FROM a") == [(5,)]
    finally:
        session.close()
