"""PostgreSQL source against the real test server: discovery, exact reads, ranges, resume."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from aggregator.connectors.postgres import PostgresSource
from aggregator.connectors.registry import source_class
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID
from tests.integration.databases.pg import PgSchema, pg_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def source(db: PgSchema, **extra: Any) -> PostgresSource:
    src = PostgresSource.from_config(db.source(**extra))
    assert isinstance(src, PostgresSource)
    return src


def messages(src: PostgresSource, stream: ConfiguredStream, state: Any = None) -> list[Message]:
    return list(src.read(stream, state))


def table_of(msgs: list[Message]) -> pa.Table:
    return pa.Table.from_batches([m.batch for m in msgs if isinstance(m, Records)])


TYPES_DDL = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN money2 AS numeric(10,2);
CREATE TABLE t (
  id bigint PRIMARY KEY, n numeric(12,2), nu numeric, big numeric(30,4), ts timestamptz,
  tn timestamp, d date, tm time, iv interval, j json, jb jsonb, u uuid, arr text[],
  iarr int[], b bytea, m mood, p posint, m2 money2, f4 real, i2 smallint, pt point,
  vc varchar(10)
);
INSERT INTO t VALUES
 (1, 12.34, 12345678901234567890.123456789, 12345678901234567890123456.1234,
  '2024-01-02 03:04:05.123456+02', '2024-01-02 03:04:05.5', '2024-01-02', '12:34:56.789',
  '1 day 2 hours', '{"b": 1,  "a": [1,2]}', '{"b": 1, "a": [1,2]}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', ARRAY['a','b,c',NULL,'"q"'], ARRAY[1,2],
  '\\x00ff', 'sad', 5, 7.5, 1.5, 3, '(1,2)', 'abc'),
 (2, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE VIEW v AS SELECT id, n FROM t;
"""


def test_discovery_types_keys_and_views(db: PgSchema) -> None:
    db.execute(TYPES_DDL)
    catalog = source(db).discover()
    t = catalog.get("t")
    assert t is not None and t.primary_key == ("id",)
    types = {f.name: f.type for f in t.schema}
    assert types["n"] == pa.decimal128(12, 2)
    assert types["big"] == pa.decimal128(30, 4)
    assert types["nu"] == pa.string()  # unconstrained numeric: exact text
    assert types["ts"] == TIMESTAMPTZ and types["tn"] == TIMESTAMP
    assert types["d"] == pa.date32() and types["tm"] == pa.time64("us")
    assert types["j"] == JSON and types["jb"] == JSON and types["u"] == UUID
    assert types["arr"] == pa.list_(pa.string()) and types["iarr"] == pa.list_(pa.int32())
    assert types["b"] == pa.binary() and types["m"] == pa.string()
    assert types["p"] == pa.int32() and types["m2"] == pa.decimal128(10, 2)
    assert types["iv"] == pa.string() and types["pt"] == pa.string()
    assert not t.schema.field("id").nullable
    assert t.metadata["declared_types"]["n"] == "numeric(12,2)"
    view = catalog.get("v")
    assert view is not None and view.metadata["kind"] == "view" and view.primary_key == ()
    assert source(db).stream_names() == ["t", "v"]


def test_full_refresh_values_are_exact_and_unknown_types_logged(db: PgSchema) -> None:
    db.execute(TYPES_DDL)
    msgs = messages(source(db), ConfiguredStream("t"))
    logs = [m.message for m in msgs if isinstance(m, Log)]
    assert any("t.pt" in m and "point" in m and "as string" in m for m in logs)
    assert any("t.iv" in m and "interval" in m for m in logs)
    assert isinstance(msgs[-1], Checkpoint) and msgs[-1].state == {"complete": True}
    rows = table_of(msgs).sort_by("id").to_pylist()
    one = rows[0]
    assert one["n"] == Decimal("12.34")
    assert one["nu"] == "12345678901234567890.123456789"
    assert one["big"] == Decimal("12345678901234567890123456.1234")
    assert one["ts"] == dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=dt.UTC)
    assert one["tn"] == dt.datetime(2024, 1, 2, 3, 4, 5, 500000)
    assert one["j"] == '{"b": 1,  "a": [1,2]}'  # json: text unchanged
    assert one["jb"] == '{"a": [1, 2], "b": 1}'  # jsonb: its normalized text
    assert one["u"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert one["arr"] == ["a", "b,c", None, '"q"'] and one["iarr"] == [1, 2]
    assert one["b"] == b"\x00\xff" and one["m"] == "sad" and one["pt"] == "(1,2)"
    assert one["iv"] == "1 day 02:00:00" and one["m2"] == Decimal("7.50")
    assert rows[1]["nu"] == "NaN" and rows[1]["n"] is None


def test_nan_in_constrained_numeric_is_quarantined_with_position(db: PgSchema) -> None:
    db.execute("CREATE TABLE q (id int PRIMARY KEY, x numeric(5,2))")
    db.execute("INSERT INTO q VALUES (1, 1.5), (2, 'NaN'), (3, NULL)")
    msgs = messages(source(db), ConfiguredStream("q"))
    quarantined = [m.rows for m in msgs if isinstance(m, Quarantined)]
    assert len(quarantined) == 1
    entry = quarantined[0].to_pylist()[0]
    assert entry["position"] == "q:id=2"
    assert "'nan'" in entry["reason"].lower() and "'x'" in entry["reason"]
    assert table_of(msgs).column("id").to_pylist() == [1, 3]


def test_block_ranges_in_parallel_checkpoint_and_resume(db: PgSchema) -> None:
    # fillfactor 10: ~18 rows per 8 kB block, so 1000 rows span ~56 blocks
    db.execute("CREATE TABLE big (id int PRIMARY KEY, v text) WITH (fillfactor = 10)")
    db.execute("INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 1000) g")
    db.execute("ANALYZE big")
    src = source(db, parallel=2, range_rows=100, batch_size=64)
    msgs = messages(src, ConfiguredStream("big"))
    ids = sorted(table_of(msgs).column("id").to_pylist())
    assert ids == list(range(1, 1001))
    checkpoints = [m.state for m in msgs if isinstance(m, Checkpoint)]
    assert checkpoints[-1] == {"complete": True}
    ranges = [c for c in checkpoints if "blocks" in c]
    per_range, count = ranges[-1]["blocks"]
    pages = db.execute("SELECT pg_relation_size('big') / 8192")[0][0]
    assert count == -(-pages // per_range) and count >= 8
    assert len(ranges) == count and ranges[-1]["done"] == list(range(count))
    assert all(b.num_rows <= 64 for b in (m.batch for m in msgs if isinstance(m, Records)))
    # resume after half of the ranges: only the rows of the other blocks are read
    half = count // 2
    state = {"blocks": [per_range, count], "done": list(range(half))}
    rest = sorted(table_of(messages(src, ConfiguredStream("big"), state)).column("id").to_pylist())
    expected = db.execute(f"SELECT id FROM big WHERE ctid >= '({half * per_range},0)' ORDER BY id")
    assert rest == [r[0] for r in expected] and 0 < len(rest) < 1000


def test_tables_without_key_are_read_in_ranges_and_views_in_one_query(db: PgSchema) -> None:
    db.execute("CREATE TABLE nokey (v int) WITH (fillfactor = 10)")
    db.execute("INSERT INTO nokey SELECT g FROM generate_series(1, 3000) g")
    db.execute("ANALYZE nokey")
    db.execute("CREATE VIEW nokey_v AS SELECT v FROM nokey")
    src = source(db, parallel=3, range_rows=500)
    msgs = messages(src, ConfiguredStream("nokey"))
    assert sorted(table_of(msgs).column("v").to_pylist()) == list(range(1, 3001))
    assert len([m for m in msgs if isinstance(m, Checkpoint) and "blocks" in m.state]) >= 5
    view = messages(src, ConfiguredStream("nokey_v"))
    assert sorted(table_of(view).column("v").to_pylist()) == list(range(1, 3001))
    assert [m.state for m in view if isinstance(m, Checkpoint)] == [{"complete": True}]


def test_incremental_by_cursor_never_skips_equal_values(db: PgSchema) -> None:
    db.execute("CREATE TABLE inc (id int PRIMARY KEY, updated int)")
    db.execute("INSERT INTO inc SELECT g, g / 3 FROM generate_series(1, 20) g")
    src = source(db, batch_size=2)
    stream = ConfiguredStream("inc", sync_mode=SyncMode.INCREMENTAL, cursor_field="updated")
    msgs = messages(src, stream)
    assert sorted(table_of(msgs).column("id").to_pylist()) == list(range(1, 21))
    states = [m.state for m in msgs if isinstance(m, Checkpoint)]
    assert states[-1] == {"cursor": 6}
    # a checkpoint is only emitted where the next batch starts with a larger value
    seen: list[int] = []
    for m in msgs:
        if isinstance(m, Records):
            seen += m.batch.column("updated").to_pylist()
        elif isinstance(m, Checkpoint) and m.state.get("cursor") is not None:
            assert all(v <= m.state["cursor"] for v in seen)
    mid = states[len(states) // 2]
    resumed = table_of(messages(src, stream, mid)).column("updated").to_pylist()
    assert min(resumed) == mid["cursor"] + 1
    assert sorted(seen_after := [v for v in seen if v > mid["cursor"]]) == sorted(resumed)
    assert seen_after
    db.execute("INSERT INTO inc VALUES (21, 7), (22, 7)")
    new = table_of(messages(src, stream, states[-1]))
    assert sorted(new.column("id").to_pylist()) == [21, 22]


def test_incremental_timestamptz_cursor_roundtrips_through_state(db: PgSchema) -> None:
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz)")
    db.execute(
        "INSERT INTO ev SELECT g, timestamptz '2024-01-01 00:00:00.000001+00' + g * "
        "interval '1 second' FROM generate_series(1, 5) g"
    )
    src = source(db)
    stream = ConfiguredStream("ev", sync_mode=SyncMode.INCREMENTAL, cursor_field="at")
    msgs = messages(src, stream)
    state = [m.state for m in msgs if isinstance(m, Checkpoint)][-1]
    assert state == {"cursor": "2024-01-01T00:00:05.000001+00:00"}
    again = messages(src, stream, state)
    assert not [m for m in again if isinstance(m, Records)]
    assert [m.state for m in again if isinstance(m, Checkpoint)] == [state]


# --------------------------------------------------------------------------- bad input


def test_unreachable_host_says_what_to_fix() -> None:
    src = PostgresSource.from_config({"host": "127.0.0.1", "port": 1, "connect_timeout": 2})
    result = src.check()
    assert not result.ok
    assert "127.0.0.1:1/postgres" in result.message and "check host and port" in result.message


def test_wrong_credentials_never_leak_the_password(pg_url: str) -> None:
    url = pg_url.replace("postgresql://postgres@", "postgresql://nobody:s3cr3t-pw@")
    src = PostgresSource.from_config({"url": url})
    with pytest.raises(ConnectorError) as info:
        src.discover()
    assert "s3cr3t-pw" not in info.value.message
    assert "nobody" in info.value.message
    src = PostgresSource.from_config(
        {"host": "127.0.0.1", "port": 1, "user": "x", "password": "s3cr3t-pw"}
    )
    assert "s3cr3t-pw" not in repr(src.config) and "s3cr3t-pw" not in src.check().message


def test_missing_table_is_a_config_error(db: PgSchema) -> None:
    db.execute("CREATE TABLE present (id int)")
    with pytest.raises(ConfigError, match=r"tables not found.*absent"):
        source(db, tables=["present", "absent"]).discover()
    with pytest.raises(ConfigError, match="'absent' is not a table or view"):
        messages(source(db), ConfiguredStream("absent"))


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="url"):
        source_class("postgres").from_config({"url": "mysql://x@y/z"})
    with pytest.raises(ConfigError, match="parallel"):
        source_class("postgres").from_config({"parallel": 0})


def test_parallel_ranges_read_one_snapshot(db: PgSchema) -> None:
    db.execute("CREATE TABLE snap (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO snap SELECT g, 0 FROM generate_series(1, 2000) g")
    db.execute("ANALYZE snap")
    src = source(db, parallel=2, range_rows=200, batch_size=50)
    reader = src.read(ConfiguredStream("snap"), None)
    first = [next(reader) for _ in range(3)]
    # changes committed while the read runs are not seen by any range
    db.execute("UPDATE snap SET v = 1")
    db.execute("DELETE FROM snap WHERE id > 1900")
    db.execute("INSERT INTO snap SELECT g, 2 FROM generate_series(2001, 2100) g")
    rest = list(reader)
    table = table_of(first + rest)
    assert sorted(table.column("id").to_pylist()) == list(range(1, 2001))
    assert set(table.column("v").to_pylist()) == {0}
