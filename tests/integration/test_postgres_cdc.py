"""Change data capture from PostgreSQL (logical replication) into DuckDB and PostgreSQL."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from aggregator.connectors.postgres import PostgresSource
from aggregator.connectors.postgres.cdc import (
    decode,
    lsn_to_int,
    lsn_to_text,
    wal_level_problem,
)
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Records
from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, run
from tests.integration.databases.pg_cdc import (
    CdcSchema,
    cdc_schema,
    free_port,
    second_cluster,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg_url: str) -> Iterator[CdcSchema]:
    yield from cdc_schema(pg_url)


STREAMS = [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}]
MERGE = ConfiguredStream("items", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("id",))


def changes(db: PgSchema) -> None:
    db.execute("INSERT INTO items SELECT g, 'new' || g, g FROM generate_series(301, 350) g")
    db.execute("UPDATE items SET v = 'upd', n = n + 1000 WHERE id % 10 = 0")
    db.execute("DELETE FROM items WHERE id % 7 = 0")
    db.execute("UPDATE items SET v = 'again' WHERE id = 20")
    db.execute("INSERT INTO items VALUES (7, 'reborn', 7)")  # deleted, then inserted again
    db.execute("INSERT INTO items VALUES (999, 'short-lived', 0)")
    db.execute("DELETE FROM items WHERE id = 999")
    db.execute("UPDATE items SET id = 1001 WHERE id = 1")  # a changed key: 1 is gone


def source_rows(db: PgSchema) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, v, n FROM items ORDER BY id")


def test_cdc_into_duckdb_and_postgres(
    db: CdcSchema, pg_url: str, store: MetadataStore, tmp_path: Path
) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, n bigint)")
    db.execute("INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 300) g")
    target = PgSchema(pg_url)
    path = tmp_path / "w.duckdb"
    destinations = {
        "duckdb": {"type": "duckdb", "config": {"path": str(path)}},
        "postgres": {"type": "postgres", "config": target.destination()},
    }
    try:
        # each destination has its own pipeline, hence its own slot prefix
        sources = {name: db.cdc_source(f"{db.prefix}_{name[:2]}") for name in destinations}

        def sync(name: str) -> None:
            record = run(store, sources[name], destinations[name], STREAMS, name=f"cdc_{name}")
            assert record.status == "succeeded", record.error

        for name in destinations:
            sync(name)
        changes(db)
        for name in destinations:
            sync(name)
            sync(name)  # nothing new: a no-op
        expected = source_rows(db)
        assert (1001, "v1", 1) in expected and 1 not in [r[0] for r in expected]
        with duckdb.connect(str(path)) as con:
            got = con.execute("SELECT id, v, n FROM items ORDER BY id").fetchall()
            columns = [r[0] for r in con.execute("DESCRIBE items").fetchall()]
        assert got == expected
        assert "_aggregator_deleted" not in columns
        assert target.execute("SELECT id, v, n FROM items ORDER BY id") == expected
    finally:
        target.drop()


def test_snapshot_interrupted_is_taken_again(db: CdcSchema) -> None:
    """The slot is created and a pending state committed before the snapshot: a run killed
    during the snapshot takes it again instead of tripping over its own slot."""
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 50) g")
    src = PostgresSource.from_config(db.cdc_source())
    first = src.read(MERGE, None)
    pending = next(m for m in first if isinstance(m, Checkpoint))
    first.close()  # "killed" before the snapshot was committed
    assert pending.state["snapshot"] == "pending"
    db.execute("DELETE FROM items WHERE id <= 10")
    again = list(src.read(MERGE, pending.state))
    states = [m.state for m in again if isinstance(m, Checkpoint)]
    assert states[0] == {"lsn": pending.state["lsn"]}
    cut = next(i for i, m in enumerate(again) if isinstance(m, Checkpoint))
    snapshot = [m.batch for m in again[:cut] if isinstance(m, Records)]
    assert sorted(i for b in snapshot for i in b["id"].to_pylist()) == list(range(11, 51))
    # the deletes after the slot's position follow as deletions (harmless replays)
    later = [m.batch.to_pylist() for m in again[cut:] if isinstance(m, Records)]
    gone = sorted(r["id"] for rows in later for r in rows if r["_aggregator_deleted"])
    assert gone == list(range(1, 11))


def test_quiet_table_still_moves_the_slot_forward(db: CdcSchema) -> None:
    """Writes to other tables only: the state moves to the flushed WAL position, so the slot
    is confirmed past them and the server can recycle that WAL."""
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    db.execute("CREATE TABLE other (id int PRIMARY KEY)")
    src = PostgresSource.from_config(db.cdc_source())
    first = [m.state for m in src.read(MERGE, None) if isinstance(m, Checkpoint)][-1]
    db.execute("INSERT INTO other SELECT generate_series(1, 1000)")
    quiet = list(src.read(MERGE, first))
    assert not [m for m in quiet if isinstance(m, Records)]
    moved = [m.state for m in quiet if isinstance(m, Checkpoint)]
    assert len(moved) == 1 and lsn_to_int(moved[0]["lsn"]) > lsn_to_int(first["lsn"])
    db.execute("INSERT INTO items VALUES (1)")
    after = list(src.read(MERGE, moved[0]))
    assert [r["id"] for m in after if isinstance(m, Records) for r in m.batch.to_pylist()] == [1]
    confirmed = db.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        [f"{db.prefix}_items"],
    )[0][0]
    assert lsn_to_int(confirmed) == lsn_to_int(moved[0]["lsn"])


def test_existing_slot_without_state_is_explained(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, n bigint)")
    src = PostgresSource.from_config(db.cdc_source())
    list(src.read(MERGE, None))  # creates the slot
    with pytest.raises(ConfigError, match=r"already exists.*not in use.*pg_drop_replication_slot"):
        list(src.read(MERGE, None))


def test_slot_owned_by_something_else_is_refused(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    slot = f"{db.prefix}_items"
    db.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [slot])
    src = PostgresSource.from_config(db.cdc_source())
    with pytest.raises(ConfigError, match=rf"'{slot}' already exists.*plugin test_decoding"):
        list(src.read(MERGE, None))
    with pytest.raises(ConfigError, match=r"belongs to something else \(plugin test_decoding"):
        list(src.read(MERGE, {"lsn": "0/1"}))
    # our own slot while another process streams from it
    db.execute("SELECT pg_drop_replication_slot(%s)", [slot])
    state = [m.state for m in src.read(MERGE, None) if isinstance(m, Checkpoint)][-1]
    recvlogical = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_recvlogical"))[-1]
    options = ["-o", "proto_version=1", "-o", f"publication_names={slot}"]
    reader = subprocess.Popen(
        [str(recvlogical), "-d", db.url, "--slot", slot, "--start", "-f", "-", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if db.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [slot]
            )[0][0]:
                break
            time.sleep(0.1)
        with pytest.raises(ConfigError, match=r"in use by another process \(PID \d+\)"):
            list(src.read(MERGE, state))
    finally:
        reader.terminate()
        reader.wait(timeout=10)


def test_publication_of_another_table_is_refused(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    db.execute("CREATE TABLE other (id int PRIMARY KEY)")
    db.execute(f'CREATE PUBLICATION "{db.prefix}_items" FOR TABLE other')
    src = PostgresSource.from_config(db.cdc_source())
    with pytest.raises(ConfigError, match=r"does not publish .*items.*slot_prefix"):
        list(src.read(MERGE, None))


def test_table_without_primary_key_is_refused(db: CdcSchema) -> None:
    db.execute("CREATE TABLE nokey (v text)")
    src = PostgresSource.from_config(db.cdc_source())
    stream = ConfiguredStream("nokey", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("v",))
    with pytest.raises(ConfigError, match=r"'nokey'.*single-column primary key.*none"):
        list(src.read(stream, None))


def test_cdc_needs_merge(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    src = PostgresSource.from_config(db.cdc_source())
    stream = ConfiguredStream("items", SyncMode.INCREMENTAL, WriteMode.APPEND)
    with pytest.raises(ConfigError, match="need write_mode: merge \\(got append\\)"):
        list(src.read(stream, None))


def test_truncate_is_explained(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    db.execute("INSERT INTO items VALUES (1), (2)")
    src = PostgresSource.from_config(db.cdc_source())
    state = [m.state for m in src.read(MERGE, None) if isinstance(m, Checkpoint)][-1]
    db.execute("TRUNCATE items")
    with pytest.raises(ConnectorError, match=r"was truncated.*reset the stream's state"):
        list(src.read(MERGE, state))


def test_wal_level_not_logical_says_how_to_fix(db: CdcSchema, tmp_path: Path) -> None:
    # the check reads the real setting: the shared server is logical ...
    level = db.execute("SHOW wal_level")[0][0]
    assert level == "logical" and wal_level_problem(level, "x") is None
    # ... and a throw-away cluster started with wal_level = replica is refused
    for url in second_cluster(tmp_path, free_port(), "replica"):
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE items (id int PRIMARY KEY)")
        src = PostgresSource.from_config({"url": url, "cdc": True})
        with pytest.raises(
            ConfigError,
            match=r"127.0.0.1:\d+/postgres has wal_level = replica.*ALTER SYSTEM SET "
            r"wal_level = logical.*restart",
        ):
            list(src.read(MERGE, None))


def test_lsn_text_roundtrip_and_empty_decode() -> None:
    assert lsn_to_text(lsn_to_int("16/B374D848")) == "16/B374D848"
    assert decode([], ("public", "x")) == []


@pytest.mark.parametrize("destination", ["duckdb", "sqlite", "postgres"])
def test_merge_writers_apply_deletion_rows(destination: str, db: PgSchema, tmp_path: Path) -> None:
    import pyarrow as pa

    from aggregator.connectors.registry import destination_class

    config: dict[str, Any] = {
        "duckdb": {"path": str(tmp_path / "d.duckdb")},
        "sqlite": {"path": str(tmp_path / "d.sqlite")},
        "postgres": db.destination(),
    }[destination]
    dest = destination_class(destination).from_config(config)
    stream = ConfiguredStream("t", write_mode=WriteMode.MERGE, primary_key=("id",))
    first = pa.RecordBatch.from_pydict(
        {"id": pa.array([1, 2, 3], pa.int64()), "v": ["a", "b", "c"]}
    )
    flags = pa.array([False, True, False, False, True], pa.bool_())
    second = pa.RecordBatch.from_pydict(
        {
            "id": pa.array([2, 3, 4, 5, 5], pa.int64()),
            "v": ["B", None, "d", "e", None],
            "_aggregator_deleted": flags,
        }
    )
    with dest.open("p") as session:  # type: ignore[attr-defined]
        w = session.writer(stream, "r")
        w.apply_schema(first.schema)
        w.write(first)
        w.commit({"n": 1})
        w.apply_schema(second.schema)
        w.write(second)
        w.finish({"n": 2})
    if destination == "duckdb":
        with duckdb.connect(config["path"]) as con:
            rows = con.execute("SELECT id, v FROM t ORDER BY id").fetchall()
            names = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    elif destination == "sqlite":
        import sqlite3

        con = sqlite3.connect(config["path"])
        rows = con.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        names = [r[1] for r in con.execute("PRAGMA table_info(t)").fetchall()]
        con.close()
    else:
        rows = db.execute("SELECT id, v FROM t ORDER BY id")
        names = [
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 't'",
                [db.name],
            )
        ]
    assert rows == [(1, "a"), (2, "B"), (4, "d")]  # 3 deleted; 5 inserted then deleted
    assert "_aggregator_deleted" not in names
