"""PostgreSQL destination: COPY loads, merge, atomic replace, evolution, state with data."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aggregator.connectors.postgres import PostgresDestination
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import QUARANTINE_SCHEMA
from aggregator.core.types import JSON, TIMESTAMPTZ, UUID
from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, pg_schema, run

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def dest(db: PgSchema) -> PostgresDestination:
    d = PostgresDestination.from_config(db.destination())
    assert isinstance(d, PostgresDestination)
    return d


def stream(name: str, mode: WriteMode, pk: tuple[str, ...] = ()) -> ConfiguredStream:
    return ConfiguredStream(name=name, write_mode=mode, primary_key=pk)


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_append_commits_data_and_state_together(db: PgSchema) -> None:
    with dest(db).open("p") as session:
        w = session.writer(stream("a", WriteMode.APPEND), "run1")
        b = batch(id=pa.array([1, 2], pa.int64()), v=["x", "y"])
        w.apply_schema(b.schema)
        w.write(b)
        w.commit({"after": 2})
        w.write(batch(id=pa.array([3], pa.int64()), v=["z"]))
        w.abort()  # the uncommitted row and state are gone
        assert session.read_state("a") == {"after": 2}
    assert db.execute("SELECT id, v FROM a ORDER BY id") == [(1, "x"), (2, "y")]
    with dest(db).open("p") as session:
        session.reset_state("a")
        assert session.read_state("a") is None


def test_exact_types_land_as_native_postgres_types(db: PgSchema) -> None:
    b = pa.RecordBatch.from_arrays(
        [
            pa.array([1], pa.int64()),
            pa.array([Decimal("12.30")], pa.decimal128(12, 2)),
            pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)], TIMESTAMPTZ),
            pa.ExtensionArray.from_storage(JSON, pa.array(['{"a": [1, 2]}'])),
            pa.ExtensionArray.from_storage(UUID, pa.array([uuid.UUID(int=7).bytes], pa.binary(16))),
            pa.array([["a", "b,c"]], pa.list_(pa.string())),
            pa.array([b"\x00\x01"], pa.binary()),
        ],
        names=["id", "amount", "at", "doc", "uid", "tags", "raw"],
    )
    with dest(db).open("p") as session:
        w = session.writer(stream("typed", WriteMode.APPEND), "r")
        w.apply_schema(b.schema)
        w.write(b)
        w.finish({"done": True})
    columns = db.execute(
        "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
        "JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_schema) || '.typed')::regclass "
        "AND a.attname = c.column_name WHERE c.table_schema = %s AND c.table_name = 'typed' "
        "ORDER BY ordinal_position",
        [db.name],
    )
    assert [c[1] for c in columns] == [
        "bigint",
        "numeric(12,2)",
        "timestamp with time zone",
        "jsonb",
        "uuid",
        "text[]",
        "bytea",
    ]
    row = db.execute("SELECT amount::text, at, doc, uid, tags, raw FROM typed")[0]
    assert row[0] == "12.30"
    assert row[1] == dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert row[2] == {"a": [1, 2]} and row[3] == uuid.UUID(int=7)
    assert row[4] == ["a", "b,c"] and bytes(row[5]) == b"\x00\x01"


def test_merge_upserts_last_row_per_key(db: PgSchema) -> None:
    with dest(db).open("p") as session:
        w = session.writer(stream("m", WriteMode.MERGE, ("id",)), "r1")
        b = batch(id=pa.array([1, 2, 1], pa.int64()), v=["a", "b", "c"])
        w.apply_schema(b.schema)
        w.write(b)
        w.commit({"s": 1})
        w.write(batch(id=pa.array([2, 3], pa.int64()), v=["B", "C"]))
        w.finish({"s": 2})
    assert db.execute("SELECT id, v FROM m ORDER BY id") == [(1, "c"), (2, "B"), (3, "C")]


def test_merge_into_existing_table_without_key_adds_unique_index(db: PgSchema) -> None:
    db.execute("CREATE TABLE ext (id bigint, v text)")
    db.execute("INSERT INTO ext VALUES (1, 'old')")
    with dest(db).open("p") as session:
        w = session.writer(stream("ext", WriteMode.MERGE, ("id",)), "r")
        w.write(batch(id=pa.array([1, 2], pa.int64()), v=["new", "two"]))
        w.finish(None)
    assert db.execute("SELECT id, v FROM ext ORDER BY id") == [(1, "new"), (2, "two")]


def test_merge_without_primary_key_is_a_config_error(db: PgSchema) -> None:
    with dest(db).open("p") as session, pytest.raises(ConfigError, match="primary_key"):
        session.writer(stream("nokey", WriteMode.MERGE), "r")


def test_replace_swaps_atomically(db: PgSchema) -> None:
    db.execute("CREATE TABLE r (id bigint)")
    db.execute("INSERT INTO r VALUES (99)")
    with dest(db).open("p") as session:
        w = session.writer(stream("r", WriteMode.REPLACE), "r1")
        b = batch(id=pa.array([1, 2], pa.int64()))
        w.apply_schema(b.schema)
        w.write(b)
        w.commit({"half": True})
        # readers still see the old table until finish
        assert db.execute("SELECT id FROM r") == [(99,)]
        w.finish({"complete": True})
        assert session.read_state("r") == {"complete": True}
    assert db.execute("SELECT id FROM r ORDER BY id") == [(1,), (2,)]
    assert db.execute("SELECT to_regclass('r__staging')") == [(None,)]


def test_schema_evolution_adds_and_widens_columns(db: PgSchema) -> None:
    with dest(db).open("p") as session:
        w = session.writer(stream("e", WriteMode.APPEND), "r")
        b = batch(id=pa.array([1], pa.int32()))
        w.apply_schema(b.schema)
        w.write(b)
        w.commit(None)
        wider = batch(id=pa.array([2**40], pa.int64()), note=["n"])
        w.apply_schema(wider.schema)
        w.write(wider)
        w.finish(None)
    with dest(db).open("p") as session:
        assert session.writer(stream("e", WriteMode.APPEND), "r").current_schema() == pa.schema(
            [("id", pa.int64()), ("note", pa.string())]
        )
    assert db.execute("SELECT id, note FROM e ORDER BY id") == [(1, None), (2**40, "n")]


def test_quarantine_rows_commit_with_the_data(db: PgSchema) -> None:
    rows = pa.table(
        {"reason": ["bad"], "position": ["src:id=5"], "raw": ['{"id": 5}']},
        schema=QUARANTINE_SCHEMA,
    )
    with dest(db).open("p") as session:
        w = session.writer(stream("qq", WriteMode.APPEND), "run9")
        w.quarantine(rows)
        w.abort()
        w = session.writer(stream("qq", WriteMode.APPEND), "run9")
        w.quarantine(rows)
        w.finish({"x": 1})
    assert db.execute("SELECT run_id, stream, reason, position, raw FROM qq__quarantine") == [
        ("run9", "qq", "bad", "src:id=5", '{"id": 5}')
    ]


def test_unreachable_destination_says_what_to_fix() -> None:
    d = PostgresDestination.from_config({"host": "127.0.0.1", "port": 1, "password": "pw-123"})
    result = d.check()
    assert not result.ok and "check host and port" in result.message
    assert "pw-123" not in result.message
    with pytest.raises(ConnectorError):
        d.open("p")


def test_engine_postgres_to_postgres_merge_incremental(
    db: PgSchema, pg_url: str, store: MetadataStore, tmp_path: Path
) -> None:
    target = PgSchema(pg_url)
    try:
        db.execute("CREATE TABLE items (id int PRIMARY KEY, v text, updated int)")
        db.execute("INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 50) g")
        streams = [
            {
                "name": "items",
                "sync_mode": "incremental",
                "cursor_field": "updated",
                "primary_key": ["id"],
            }
        ]
        destination = {"type": "postgres", "config": target.destination()}
        first = run(store, db.source(batch_size=7), destination, streams)
        assert first.status == "succeeded", first.error
        assert first.streams[0].rows_loaded == 50
        db.execute("UPDATE items SET v = 'changed', updated = 100 WHERE id = 3")
        second = run(store, db.source(), destination, streams)
        assert second.status == "succeeded" and second.streams[0].rows_read == 1
        assert target.execute("SELECT count(*), max(updated) FROM items") == [(50, 100)]
        assert target.execute("SELECT v FROM items WHERE id = 3") == [("changed",)]
        state = target.execute(
            "SELECT state FROM _aggregator_state WHERE stream = 'items' ORDER BY seq DESC LIMIT 1"
        )
        assert state == [({"cursor": 100},)]
    finally:
        target.drop()
