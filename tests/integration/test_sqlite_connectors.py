"""SQLite source and destination, driven directly through the connector SDK."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aggregator.connectors.registry import destination_class, source_class
from aggregator.connectors.sdk import DestinationSession
from aggregator.connectors.sqlite import SQLiteDestination, SQLiteSource
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Quarantined, Records
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


def destination(path: Path) -> SQLiteDestination:
    dest = SQLiteDestination.from_config({"path": str(path)})
    assert isinstance(dest, SQLiteDestination)
    return dest


def source(path: Path, **extra: Any) -> SQLiteSource:
    src = SQLiteSource.from_config({"path": str(path), **extra})
    assert isinstance(src, SQLiteSource)
    return src


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def stream(
    name: str, mode: WriteMode = WriteMode.APPEND, pk: tuple[str, ...] = (), **kw: Any
) -> ConfiguredStream:
    return ConfiguredStream(name=name, write_mode=mode, primary_key=pk, **kw)


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def read_all(src: SQLiteSource, configured: ConfiguredStream, state: Any = None) -> pa.Table:
    batches = [m.batch for m in src.read(configured, state) if isinstance(m, Records)]
    return pa.Table.from_batches(batches)


def run_stream(
    src: SQLiteSource, configured: ConfiguredStream, session: DestinationSession, run_id: str
) -> None:
    """A minimal engine loop: read, apply schema, write, quarantine, commit, finish."""
    writer = session.writer(configured, run_id)
    state = session.read_state(configured.name)
    schema_applied = False
    last: dict[str, Any] | None = None
    for message in src.read(configured, state):
        if isinstance(message, Records):
            if not schema_applied:
                writer.apply_schema(message.batch.schema)
                schema_applied = True
            writer.write(message.batch)
        elif isinstance(message, Quarantined):
            writer.quarantine(message.rows)
        elif isinstance(message, Checkpoint):
            writer.commit(message.state)
            last = message.state
    writer.finish(last)


EXACT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("huge", pa.decimal256(60, 20)),
        pa.field("at", TIMESTAMPTZ),
        pa.field("local", TIMESTAMP),
        pa.field("precise", pa.timestamp("ns")),
        pa.field("day", pa.date32()),
        pa.field("doc", JSON),
        pa.field("uid", UUID),
        pa.field("tags", pa.list_(pa.int64())),
        pa.field("point", pa.struct([("x", pa.float64()), ("label", pa.string())])),
        pa.field("blob", pa.binary()),
        pa.field("flag", pa.bool_()),
        pa.field("big", pa.uint64()),
        pa.field("ratio", pa.float64()),
        pa.field("name", pa.string()),
    ]
)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def exact_table() -> pa.Table:
    doc = pa.ExtensionArray.from_storage(JSON, pa.array(['{"a": [1, 2.50]}', "1.50", None]))
    uid = pa.ExtensionArray.from_storage(
        UUID, pa.array([UID.bytes, uuid.UUID(int=0).bytes, None], pa.binary(16))
    )
    return pa.table(
        {
            "id": [1, 2, 3],
            "amount": pa.array(
                [
                    Decimal("1234567890123456789012345678.1234567890"),
                    Decimal("-0.0000000001"),
                    None,
                ],
                pa.decimal128(38, 10),
            ),
            "huge": pa.array(
                [
                    Decimal("1234567890123456789012345678901234567890.12345678901234567890"),
                    None,
                    Decimal("0.00000000000000000001"),
                ],
                pa.decimal256(60, 20),
            ),
            "at": pa.array(
                [
                    dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
                    None,
                    dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                ],
                TIMESTAMPTZ,
            ),
            "local": pa.array(
                [dt.datetime(2024, 2, 29, 12, 0), None, dt.datetime(2000, 1, 1)], TIMESTAMP
            ),
            "precise": pa.array([1_700_000_000_123_456_789, None, 0], pa.timestamp("ns")),
            "day": pa.array([dt.date(2024, 1, 31), None, dt.date(1, 1, 1)], pa.date32()),
            "doc": doc,
            "uid": uid,
            "tags": pa.array([[1, 2, 3], [], None], pa.list_(pa.int64())),
            "point": pa.array(
                [{"x": 1.5, "label": "a"}, None, {"x": -0.1, "label": None}],
                pa.struct([("x", pa.float64()), ("label", pa.string())]),
            ),
            "blob": pa.array([b"\x00\xff\x10", b"", None], pa.binary()),
            "flag": [True, False, None],
            "big": pa.array([2**64 - 1, 0, None], pa.uint64()),
            "ratio": [0.1 + 0.2, -1e300, None],
            "name": ["é\u2603", "", None],
        },
        schema=EXACT_SCHEMA,
    )


# --------------------------------------------------------------------------- destination


def test_registered_in_entry_points() -> None:
    assert source_class("sqlite") is SQLiteSource
    assert destination_class("sqlite") is SQLiteDestination


def test_check_creates_writable_database(tmp_path: Path) -> None:
    result = destination(tmp_path / "sub" / "w.sqlite").check()
    assert result.ok, result.message
    assert (tmp_path / "sub" / "w.sqlite").exists()


def test_append_commits_data_with_state(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        writer = session.writer(stream("orders"), "run1")
        assert writer.current_schema() is None
        writer.apply_schema(pa.schema([("id", pa.int64()), ("name", pa.string())]))
        writer.write(batch(id=[1, 2], name=["a", "b"]))
        assert query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'orders'") == [(0,)]
        writer.commit({"cursor": 2})
        assert query(db, "SELECT id, name FROM orders ORDER BY id") == [(1, "a"), (2, "b")]
        writer.write(batch(id=[3], name=["c"]))
        writer.finish({"cursor": 3})
        assert session.read_state("orders") == {"cursor": 3}
        assert session.read_state("other") is None
    assert query(db, "SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,)]
    # close compacts superseded state rows: one row per stream remains
    assert query(db, "SELECT stream, state FROM _aggregator_state") == [
        ("orders", json.dumps({"cursor": 3}))
    ]
    with destination(db).open("p") as session:
        assert session.read_state("orders") == {"cursor": 3}
        assert session.writer(stream("orders"), "r2").current_schema() == pa.schema(
            [("id", pa.int64()), ("name", pa.string())]
        )
        session.reset_state("orders")
        assert session.read_state("orders") is None
    with destination(db).open("p") as session:
        assert session.read_state("orders") is None
    with destination(db).open("other-pipeline") as session:
        assert session.read_state("orders") is None


def test_reset_all_streams(tmp_path: Path) -> None:
    with destination(tmp_path / "w.sqlite").open("p") as session:
        for name in ("a", "b"):
            writer = session.writer(stream(name), "r")
            writer.write(batch(x=[1]))
            writer.finish({"n": name})
        assert [session.read_state("a"), session.read_state("b")] == [{"n": "a"}, {"n": "b"}]
        session.reset_state()
        assert [session.read_state("a"), session.read_state("b")] == [None, None]


def test_uncommitted_rows_are_rolled_back_by_abort_and_close(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        writer = session.writer(stream("t"), "r")
        writer.write(batch(x=[1]))
        writer.commit({"n": 1})
        writer.write(batch(x=[2]))
        writer.abort()
        writer.write(batch(x=[3]))
        # closing without commit discards x=3
    assert query(db, "SELECT x FROM t") == [(1,)]
    with destination(db).open("p") as session:
        assert session.read_state("t") == {"n": 1}


def test_crash_before_commit_leaves_last_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    script = textwrap.dedent(
        f"""
        import os
        import pyarrow as pa
        from aggregator.connectors.sqlite import SQLiteDestination
        from aggregator.core.catalog import ConfiguredStream, WriteMode
        dest = SQLiteDestination.from_config({{"path": {str(db)!r}}})
        session = dest.open("p")
        w = session.writer(ConfiguredStream(name="t", write_mode=WriteMode.APPEND), "r1")
        w.write(pa.RecordBatch.from_pydict({{"x": [1, 2]}}))
        w.commit({{"upto": 2}})
        w.write(pa.RecordBatch.from_pydict({{"x": [3, 4]}}))
        q = pa.table({{"reason": ["bad"], "position": ["p"], "raw": ["r"]}})
        w.quarantine(q)
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    assert query(db, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
    assert query(db, "SELECT count(*) FROM sqlite_master WHERE name = 't__quarantine'") == [(0,)]
    with destination(db).open("p") as session:
        assert session.read_state("t") == {"upto": 2}
        writer = session.writer(stream("t"), "r2")
        writer.write(batch(x=[3, 4]))
        writer.finish({"upto": 4})
    assert query(db, "SELECT x FROM t ORDER BY x") == [(1,), (2,), (3,), (4,)]


def test_replace_swaps_at_finish_and_abort_keeps_old(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r1")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[1, 2]))
        w.finish({"run": 1})
    con = sqlite3.connect(db)
    con.execute("CREATE VIEW v AS SELECT x * 10 AS y FROM t")
    con.commit()
    con.close()
    with destination(db).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r2")
        w.apply_schema(pa.schema([("x", pa.int64()), ("s", pa.string())]))
        w.write(batch(x=[7], s=["a"]))
        w.commit({"run": 2, "part": 1})
        assert query(db, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        assert session.read_state("t") == {"run": 1}
        w.write(batch(x=[8], s=["b"]))
        w.commit({"run": 2, "part": 2})
        assert query(db, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        w.finish(None)
        assert session.read_state("t") == {"run": 2, "part": 2}
    assert query(db, "SELECT x, s FROM t ORDER BY x") == [(7, "a"), (8, "b")]
    assert query(db, "SELECT y FROM v ORDER BY y") == [(70,), (80,)]
    assert query(db, "SELECT name FROM sqlite_master WHERE name LIKE '%staging%'") == []

    with destination(db).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r3")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[100]))
        w.commit({"run": 3})
        w.abort()
        assert session.read_state("t") == {"run": 2, "part": 2}
    assert query(db, "SELECT x, s FROM t ORDER BY x") == [(7, "a"), (8, "b")]
    assert query(db, "SELECT name FROM sqlite_master WHERE name LIKE '%staging%'") == []
    with destination(db).open("p") as session:
        schema = session.writer(stream("t"), "r4").current_schema()
        assert schema == pa.schema([("x", pa.int64()), ("s", pa.string())])


def test_replace_after_crash_drops_leftover_staging(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r1")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[1]))
        w.commit({"run": 1})  # staging committed, then the process "dies"
    assert query(db, "SELECT x FROM t__staging") == [(1,)]
    assert [s.name for s in source(db).discover().streams] == []
    with destination(db).open("p") as session:
        assert session.read_state("t") is None
        w = session.writer(stream("t", WriteMode.REPLACE), "r2")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[2]))
        w.finish({"run": 2})
    assert query(db, "SELECT x FROM t") == [(2,)]


def test_merge_upserts_and_last_row_per_key_wins(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        w = session.writer(stream("t", WriteMode.MERGE, pk=("k1", "k2")), "r")
        w.apply_schema(pa.schema([("k1", pa.int64()), ("k2", pa.string()), ("v", pa.string())]))
        w.write(batch(k1=[1, 1, 2], k2=["a", "b", "a"], v=["1a", "1b", "2a"]))
        w.commit({"n": 1})
        w.write(
            batch(k1=[1, 2, 1, 3, 1], k2=["a", "a", "a", "c", "a"], v=["x", "2a'", "y", "3c", "z"])
        )
        w.write(batch(k1=[None, None], k2=["n", "n"], v=["null1", "null2"]))
        w.finish({"n": 2})
        w2 = session.writer(stream("t", WriteMode.MERGE, pk=("k1", "k2")), "r2")
        w2.write(batch(k1=[None, 3], k2=["n", "c"], v=["null3", "3c'"]))
        w2.finish({"n": 3})
    assert query(db, "SELECT k1, k2, v FROM t ORDER BY k1 IS NULL, k1, k2") == [
        (1, "a", "z"),
        (1, "b", "1b"),
        (2, "a", "2a'"),
        (3, "c", "3c'"),
        (None, "n", "null3"),
    ]
    with pytest.raises(ConfigError, match="primary_key"), destination(db).open("p") as session:
        session.writer(stream("t", WriteMode.MERGE), "r")


def test_schema_evolution_adds_columns_and_widens_exactly(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        w = session.writer(stream("t"), "r")
        v1 = pa.schema([("id", pa.int32()), ("n", pa.int64()), ("d", pa.decimal128(12, 2))])
        w.apply_schema(v1)
        w.write(
            pa.RecordBatch.from_pydict(
                {"id": [1], "n": [9_007_199_254_740_993], "d": [Decimal("1.50")]}, schema=v1
            )
        )
        w.commit({"v": 1})
        v2 = pa.schema(
            [
                ("id", pa.int64()),
                ("n", pa.decimal128(30, 2)),
                ("d", pa.decimal128(20, 4)),
                ("extra", pa.string()),
            ]
        )
        w.apply_schema(v2)
        w.write(
            pa.RecordBatch.from_pydict(
                {
                    "id": [2],
                    "n": [Decimal("123456789012345678901234567.89")],
                    "d": [Decimal("2.1234")],
                    "extra": ["new"],
                },
                schema=v2,
            )
        )
        w.finish({"v": 2})
        assert w.current_schema() == v2
    assert query(db, "SELECT id, n, typeof(n), d, extra FROM t ORDER BY id") == [
        (1, "9007199254740993.00", "text", "1.50", None),
        (2, "123456789012345678901234567.89", "text", "2.1234", "new"),
    ]
    declared = {r[1]: r[2] for r in query(db, "PRAGMA table_info(t)")}
    # the integer -> decimal-text change of affinity rebuilt the table with the new types
    assert declared == {
        "id": "BIGINT",
        "n": "DECIMAL_TEXT(30,2)",
        "d": "DECIMAL_TEXT(20,4)",
        "extra": "TEXT",
    }
    versions = query(
        db, "SELECT columns FROM _aggregator_schemas WHERE table_name = 't' ORDER BY seq"
    )
    assert [json.loads(v[0])[1]["type"] for v in versions] == ["int64", "decimal(30,2)"]
    got = read_all(source(db), stream("t"))
    assert got.schema == v2
    assert got.to_pylist() == [
        {"id": 1, "n": Decimal("9007199254740993.00"), "d": Decimal("1.5000"), "extra": None},
        {
            "id": 2,
            "n": Decimal("123456789012345678901234567.89"),
            "d": Decimal("2.1234"),
            "extra": "new",
        },
    ]


def test_exact_types_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    table = exact_table()
    with destination(db).open("p") as session:
        w = session.writer(stream("exact"), "r")
        w.apply_schema(table.schema)
        for b in table.to_batches():
            w.write(b)
        w.finish({"done": True})
    stored = query(
        db,
        "SELECT amount, huge, at, local, precise, day, doc, uid, tags, point, "
        "blob, flag, big, ratio FROM exact ORDER BY id",
    )
    assert stored[0] == (
        "1234567890123456789012345678.1234567890",
        "1234567890123456789012345678901234567890.12345678901234567890",
        "2024-01-02T03:04:05.678901+00:00",
        "2024-02-29T12:00:00.000000",
        "2023-11-14T22:13:20.123456789",
        "2024-01-31",
        '{"a": [1, 2.50]}',
        "12345678-1234-5678-1234-567812345678",
        "[1,2,3]",
        '{"x":1.5,"label":"a"}',
        b"\x00\xff\x10",
        1,
        "18446744073709551615",
        0.30000000000000004,
    )
    assert stored[1][6] == "1.50"  # JSON text kept exactly (TEXT affinity)
    assert stored[2][2] == "1969-12-31T23:59:59.000000+00:00"
    declared = {r[1]: r[2] for r in query(db, "PRAGMA table_info(exact)")}
    assert declared["amount"] == "DECIMAL_TEXT(38,10)"
    assert declared["at"] == "TIMESTAMPTZ"
    assert declared["local"] == "TIMESTAMP"
    assert declared["doc"] == "JSON_TEXT"
    assert declared["uid"] == "UUID"
    got = read_all(source(db), stream("exact"))
    assert got.schema == table.schema
    assert got.equals(table)


def test_quarantine_table(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    with destination(db).open("p") as session:
        w = session.writer(stream("t", destination_table="orders"), "run-9")
        w.write(batch(x=[1]))
        w.quarantine(
            pa.table({"reason": ["bad", "worse"], "position": ["f:1", None], "raw": ["{}", None]})
        )
        w.commit({"n": 1})
    rows = query(db, "SELECT run_id, stream, reason, position, raw FROM orders__quarantine")
    assert rows == [("run-9", "t", "bad", "f:1", "{}"), ("run-9", "t", "worse", None, None)]


def test_writers_in_threads_are_serialized(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    errors: list[BaseException] = []
    with destination(db).open("p") as session:

        def load(name: str) -> None:
            try:
                w = session.writer(stream(name), "r")
                for i in range(30):
                    w.write(batch(i=[i, i]))
                    w.commit({"i": i})
                w.finish({"i": 30})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(f"s{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [session.read_state(f"s{n}") for n in range(4)] == [{"i": 30}] * 4
    for n in range(4):
        assert query(db, f"SELECT count(*), sum(i) FROM s{n}") == [(60, 870)]


# --------------------------------------------------------------------------- source


def make_source_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE items (
            id INTEGER PRIMARY KEY, qty INTEGER, price DECIMAL(10,2), weight REAL,
            name TEXT, code VARCHAR(8), data BLOB, active BOOLEAN, born DATE,
            seen DATETIME, at TIMESTAMPTZ, meta JSON, other FOO, anything, total NUMERIC
        );
        CREATE TABLE pairs (b TEXT, a INTEGER, v TEXT, PRIMARY KEY (b, a)) WITHOUT ROWID;
        CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
        """
    )
    con.executemany(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                1,
                5,
                "9.99",
                1.5,
                "apple",
                "A1",
                b"\x01",
                1,
                "2024-01-01",
                "2024-01-01 10:00:00",
                "2024-01-01T10:00:00+02:00",
                '{"k": 1}',
                7,
                "x",
                "12.5",
            ),
            (
                2,
                None,
                "12.00",
                None,
                "pear",
                None,
                None,
                0,
                None,
                None,
                "2024-01-01 08:00:00",
                None,
                "t",
                3,
                None,
            ),
        ],
    )
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?)", [("x", 2, "x2"), ("x", 1, "x1")])
    con.commit()
    con.close()


def test_source_check(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    result = source(missing).check()
    assert not result.ok
    assert "does not exist" in result.message
    assert not missing.exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("hello, not a database " * 100)
    result = source(junk).check()
    assert not result.ok
    assert "is not a readable SQLite database" in result.message
    db = tmp_path / "s.sqlite"
    make_source_db(db)
    assert source(db).check().ok


def test_source_discover(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    make_source_db(db)
    catalog = source(db).discover()
    assert [s.name for s in catalog.streams] == ["cheap", "items", "pairs"]
    items = catalog.get("items")
    assert items is not None
    assert {f.name: f.type for f in items.schema} == {
        "id": pa.int64(),
        "qty": pa.int64(),
        "price": pa.decimal128(10, 2),
        "weight": pa.float64(),
        "name": pa.string(),
        "code": pa.string(),
        "data": pa.binary(),
        "active": pa.bool_(),
        "born": pa.date32(),
        "seen": TIMESTAMP,
        "at": TIMESTAMPTZ,
        "meta": JSON,
        "other": pa.string(),
        "anything": pa.string(),
        "total": pa.decimal128(38, 10),
    }
    assert items.primary_key == ("id",)
    assert items.cursor_candidates == ("id", "qty", "born", "seen", "at")
    assert items.sync_modes == (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
    pairs = catalog.get("pairs")
    assert pairs is not None
    assert pairs.primary_key == ("b", "a")
    assert pairs.metadata["rowid"] is False
    assert source(db, tables=["pairs"]).discover().get("items") is None
    with pytest.raises(ConfigError, match="nope"):
        source(db, tables=["nope"]).discover()


def test_source_reads_exact_values_and_quarantines_misfits(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    make_source_db(db)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO items (id, qty, price, name) VALUES (3, 'abc', '1.234', 'bad')")
    con.execute("INSERT INTO items (id, active, born, name) VALUES (4, 2, 'soon', 'bad2')")
    con.commit()
    con.close()
    messages = list(source(db).read(stream("items"), None))
    records = pa.Table.from_batches([m.batch for m in messages if isinstance(m, Records)])
    assert records.column("id").to_pylist() == [1, 2]
    row = records.to_pylist()[0]
    assert row["price"] == Decimal("9.99")
    assert row["seen"] == dt.datetime(2024, 1, 1, 10, 0)
    assert row["at"] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
    assert row["other"] == "7"
    assert row["total"] == Decimal("12.5")
    assert row["data"] == b"\x01"
    assert row["active"] is True
    assert records.to_pylist()[1]["at"] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
    assert records.to_pylist()[1]["anything"] == "3"
    quarantined = [m.rows for m in messages if isinstance(m, Quarantined)]
    assert len(quarantined) == 1
    q = quarantined[0].to_pylist()
    assert [r["position"] for r in q] == ["items:rowid=3", "items:rowid=4"]
    assert q[0]["reason"] == (
        "column 'qty': 'abc' is not int64; column 'price': 1.234 is not decimal(10,2)"
    )
    assert q[1]["reason"] == ("column 'active': 2 is not bool; column 'born': 'soon' is not date")
    assert json.loads(q[0]["raw"])["qty"] == "abc"
    assert json.loads(q[0]["raw"])["price"] == 1.234
    checkpoints = [m.state for m in messages if isinstance(m, Checkpoint)]
    assert checkpoints == [{"after_rowid": 4}, {"complete": True}]


def test_source_full_refresh_resumes_after_rowid(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(7)])
    con.commit()
    con.close()
    src = source(db, batch_size=3)
    messages = list(src.read(stream("t"), None))
    assert [m.state for m in messages if isinstance(m, Checkpoint)] == [
        {"after_rowid": 3},
        {"after_rowid": 6},
        {"after_rowid": 7},
        {"complete": True},
    ]
    assert [m.batch.num_rows for m in messages if isinstance(m, Records)] == [3, 3, 1]
    assert read_all(src, stream("t"), {"after_rowid": 3}).column("x").to_pylist() == [3, 4, 5, 6]
    assert read_all(src, stream("t"), {"complete": True}).num_rows == 7
    # views and WITHOUT ROWID tables checkpoint only at the end
    pairs_db = tmp_path / "p.sqlite"
    make_source_db(pairs_db)
    msgs = list(source(pairs_db, batch_size=1).read(stream("pairs"), None))
    assert [m.state for m in msgs if isinstance(m, Checkpoint)] == [{"complete": True}]
    rows = pa.Table.from_batches([m.batch for m in msgs if isinstance(m, Records)])
    assert rows.to_pylist() == [{"b": "x", "a": 1, "v": "x1"}, {"b": "x", "a": 2, "v": "x2"}]


def test_source_incremental_with_ties_resumes_exactly(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, ts INTEGER, v TEXT)")
    con.executemany(
        "INSERT INTO ev VALUES (?, ?, ?)",
        [(1, 10, "a"), (2, 10, "b"), (3, 10, "c"), (4, 20, "d"), (5, None, "n"), (6, 30, "e")],
    )
    con.commit()
    inc = stream("ev", sync_mode=SyncMode.INCREMENTAL, cursor_field="ts")
    src = source(db, batch_size=2)
    messages = list(src.read(inc, None))
    states = [m.state for m in messages if isinstance(m, Checkpoint)]
    assert states == [
        {"cursor": 10, "rowid": 1},
        {"cursor": 10, "rowid": 3},
        {"cursor": 30, "rowid": 6},
        {"cursor": 30, "rowid": 6},
    ]
    all_rows = pa.Table.from_batches([m.batch for m in messages if isinstance(m, Records)])
    assert all_rows.column("v").to_pylist() == ["n", "a", "b", "c", "d", "e"]
    resumed = read_all(src, inc, {"cursor": 10, "rowid": 1})
    assert resumed.column("v").to_pylist() == ["b", "c", "d", "e"]
    con.executemany(
        "INSERT INTO ev VALUES (?, ?, ?)", [(7, 30, "f"), (8, 25, "late"), (9, 40, "g")]
    )
    con.commit()
    con.close()
    assert read_all(src, inc, states[-1]).column("v").to_pylist() == ["f", "g"]
    assert read_all(src, inc, {"cursor": 20}).column("v").to_pylist() == ["late", "e", "f", "g"]
    with pytest.raises(ConfigError, match="cursor_field"):
        list(src.read(stream("ev", sync_mode=SyncMode.INCREMENTAL), None))


def test_source_text_decimals_in_text_columns_parse_exactly(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE m (v "DECIMAL_TEXT(38,10)", w TEXT)')
    con.execute("INSERT INTO m VALUES ('1234567890123456789012345678.0000000001', 'x')")
    con.commit()
    con.close()
    got = read_all(source(db), stream("m"))
    assert got.schema.field("v").type == pa.decimal128(38, 10)
    assert got.column("v").to_pylist() == [Decimal("1234567890123456789012345678.0000000001")]
    overridden = read_all(source(db), stream("m", column_types={"w": pa.string()}))
    assert overridden.column("w").to_pylist() == ["x"]


# --------------------------------------------------------------------------- round trips


def test_sqlite_to_sqlite_round_trip(tmp_path: Path) -> None:
    first = tmp_path / "first.sqlite"
    with destination(first).open("load") as session:
        w = session.writer(stream("exact"), "r")
        w.apply_schema(EXACT_SCHEMA)
        w.write(exact_table().to_batches()[0])
        w.finish({"done": 1})
    make_source_db(first)
    second = tmp_path / "second.sqlite"
    src = source(first, batch_size=2)
    streams = [s.name for s in src.discover().streams]
    assert streams == ["cheap", "exact", "items", "pairs"]
    with destination(second).open("copy") as session:
        for name in streams:
            run_stream(src, stream(name, WriteMode.REPLACE), session, "copy-1")
        assert session.read_state("exact") == {"complete": True}
    copy = source(second)
    for name in streams:
        original = read_all(src, stream(name))
        copied = read_all(copy, stream(name))
        assert copied.schema == original.schema, name
        assert copied.equals(original), name
    assert read_all(copy, stream("exact")).equals(exact_table())

    # incremental append: a re-run only moves new rows
    con = sqlite3.connect(first)
    con.execute("INSERT INTO items (id, name) VALUES (10, 'new')")
    con.commit()
    con.close()
    inc = stream("items", WriteMode.APPEND, sync_mode=SyncMode.INCREMENTAL, cursor_field="id")
    target = tmp_path / "inc.sqlite"
    with destination(target).open("inc") as session:
        run_stream(src, inc, session, "a")
        run_stream(src, inc, session, "b")
        assert session.read_state("items") == {"cursor": 10, "rowid": 10}
    assert query(target, "SELECT id FROM items ORDER BY id") == [(1,), (2,), (10,)]
