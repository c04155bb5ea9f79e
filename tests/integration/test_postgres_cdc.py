"""Change data capture from PostgreSQL (logical replication) into DuckDB and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.connectors.postgres import PostgresSource
from aggregator.connectors.postgres.cdc import CdcReader, decode, lsn_to_int, lsn_to_text
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, pg_schema, run

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    for schema in pg_schema(pg_url):
        prefix = f"agg_{uuid.uuid4().hex[:8]}"
        schema.prefix = prefix  # type: ignore[attr-defined]
        try:
            yield schema
        finally:
            schema.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name LIKE %s",
                [prefix + "%"],
            )
            for (name,) in schema.execute(
                "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", [prefix + "%"]
            ):
                schema.execute(f"DROP PUBLICATION {name}")


def cdc_source(db: PgSchema, **extra: Any) -> dict[str, Any]:
    return db.source(cdc=True, slot_prefix=db.prefix, **extra)  # type: ignore[attr-defined]


STREAMS = [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}]


def changes(db: PgSchema) -> None:
    db.execute("INSERT INTO items SELECT g, 'new' || g, g FROM generate_series(301, 350) g")
    db.execute("UPDATE items SET v = 'upd', n = n + 1000 WHERE id % 10 = 0")
    db.execute("DELETE FROM items WHERE id % 7 = 0")
    db.execute("UPDATE items SET v = 'again' WHERE id = 20")
    db.execute("INSERT INTO items VALUES (7, 'reborn', 7)")  # deleted, then inserted again
    db.execute("INSERT INTO items VALUES (999, 'short-lived', 0)")
    db.execute("DELETE FROM items WHERE id = 999")


def source_rows(db: PgSchema) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, v, n FROM items ORDER BY id")


def test_cdc_into_duckdb_and_postgres(
    db: PgSchema, pg_url: str, store: MetadataStore, tmp_path: Path
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
        sources = {
            name: cdc_source(db) | {"slot_prefix": f"{db.prefix}_{name[:2]}"}  # type: ignore[attr-defined]
            for name in destinations
        }

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
        with duckdb.connect(str(path)) as con:
            got = con.execute("SELECT id, v, n FROM items ORDER BY id").fetchall()
            columns = [r[0] for r in con.execute("DESCRIBE items").fetchall()]
        assert got == expected
        assert "_aggregator_deleted" not in columns
        assert target.execute("SELECT id, v, n FROM items ORDER BY id") == expected
    finally:
        target.drop()


def test_existing_slot_without_state_is_explained(db: PgSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, n bigint)")
    src = PostgresSource.from_config(cdc_source(db))
    stream = ConfiguredStream("items", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("id",))
    list(src.read(stream, None))  # creates the slot
    with pytest.raises(ConfigError, match=r"already exists.*pg_drop_replication_slot"):
        list(src.read(stream, None))


def test_table_without_primary_key_is_refused(db: PgSchema) -> None:
    db.execute("CREATE TABLE nokey (v text)")
    src = PostgresSource.from_config(cdc_source(db))
    stream = ConfiguredStream("nokey", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("v",))
    with pytest.raises(ConfigError, match="single-column primary key"):
        list(src.read(stream, None))


def test_wal_level_not_logical_says_how_to_fix(db: PgSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    src = PostgresSource.from_config(cdc_source(db))
    assert isinstance(src, PostgresSource)

    class Replica:
        def execute(self, _sql: str) -> Any:
            class Row:
                def fetchone(self) -> tuple[str]:
                    return ("replica",)

            return Row()

    from aggregator.connectors.postgres.source import _TableReader

    rel = next(r for r in src._relations() if r.name == "items")
    reader = CdcReader(_TableReader(src.config, rel, ConfiguredStream("items")), "x", 10)
    with pytest.raises(ConfigError, match=r"wal_level = replica.*wal_level = logical.*restart"):
        reader._check_wal_level(Replica())


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
