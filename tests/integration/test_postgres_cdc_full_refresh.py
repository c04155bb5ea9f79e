"""``--full-refresh`` of a change data capture stream: a new snapshot, the slot kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.connectors.postgres import PostgresSource
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.engines.follow import Follow
from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, run
from tests.integration.databases.pg_cdc import CdcSchema, cdc_schema

pytestmark = pytest.mark.integration

STREAMS = [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}]


@pytest.fixture
def db(pg_url: str) -> Iterator[CdcSchema]:
    yield from cdc_schema(pg_url)


def source_rows(db: PgSchema) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, v, n FROM items ORDER BY id")


def slots(db: CdcSchema) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots "
        "WHERE slot_name LIKE %s",
        [db.prefix + "%"],
    )


def test_full_refresh_of_a_cdc_stream_resnapshots_and_keeps_following(
    db: CdcSchema, store: MetadataStore, tmp_path: Path
) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, n bigint)")
    db.execute("INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 300) g")
    path = tmp_path / "cdc.duckdb"
    destination = {"type": "duckdb", "config": {"path": str(path)}}

    def sync(full_refresh: bool = False) -> None:
        record = run(store, db.cdc_source(), destination, STREAMS, full_refresh=full_refresh)
        assert record.status == "succeeded", record.error

    def destination_rows() -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path)) as con:
            return con.execute("SELECT id, v, n FROM items ORDER BY id").fetchall()

    sync()  # slot created, snapshot taken
    db.execute("UPDATE items SET v = 'upd' WHERE id <= 10")
    sync()  # changes applied, slot confirmed by the next run
    assert destination_rows() == source_rows(db)
    (before,) = slots(db)
    # the destination drifts (someone edits it): only a full refresh repairs that
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM items WHERE id > 250")
        con.execute("INSERT INTO items VALUES (5000, 'stray', 0)")
    db.execute("DELETE FROM items WHERE id BETWEEN 100 AND 120")  # left in the slot
    sync(full_refresh=True)
    assert destination_rows() == source_rows(db)
    (after,) = slots(db)
    assert after[0] == before[0]  # the same slot, kept: its changes were not lost
    with duckdb.connect(str(path)) as con:
        (state,) = con.execute(
            "SELECT state FROM _aggregator_state WHERE stream = 'items' ORDER BY seq DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    assert '"snapshot"' not in str(state) and after[1] in str(state)
    # changes after the full refresh, and those the slot still held, apply by merge
    db.execute("INSERT INTO items VALUES (1000, 'late', 1000)")
    db.execute("UPDATE items SET n = -1 WHERE id = 1")
    db.execute("DELETE FROM items WHERE id = 2")
    sync()
    sync()
    assert destination_rows() == source_rows(db)
    assert (1000, "late", 1000) in destination_rows()


def test_a_full_refresh_of_a_cdc_stream_cannot_be_followed(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    src = PostgresSource.from_config(db.cdc_source())
    assert isinstance(src, PostgresSource)
    stream = ConfiguredStream("items", SyncMode.INCREMENTAL, WriteMode.REPLACE, primary_key=("id",))
    with pytest.raises(ConfigError, match="cannot be followed: run it without --follow"):
        list(src.read_following(stream, None, Follow(0.1)))
    src.close()
