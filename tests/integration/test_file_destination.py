"""File destination (Parquet, CSV, JSON Lines), driven directly through the connector SDK."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from aggregator.connectors.file_destination import (
    FileDestination,
    FileDestinationConfig,
    read_table,
)
from aggregator.connectors.file_destination.destination import FileSession
from aggregator.connectors.registry import destination_class
from aggregator.connectors.sdk import DestinationSession
from aggregator.connectors.sqlite import SQLiteSource
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Quarantined, Records
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID

pytestmark = pytest.mark.integration

FORMATS = ["parquet", "csv", "jsonl"]


def destination(path: Path, **extra: Any) -> FileDestination:
    dest = FileDestination.from_config({"path": str(path), **extra})
    assert isinstance(dest, FileDestination)
    return dest


def stream(
    name: str, mode: WriteMode = WriteMode.APPEND, pk: tuple[str, ...] = (), **kw: Any
) -> ConfiguredStream:
    return ConfiguredStream(name=name, write_mode=mode, primary_key=pk, **kw)


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def table_of(path: Path, name: str, pipeline: str = "p", **extra: Any) -> pa.Table:
    config = FileDestinationConfig.model_validate({"path": str(path), **extra})
    return read_table(config, pipeline, name, name)


def files(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def run_stream(
    src: SQLiteSource, configured: ConfiguredStream, session: DestinationSession, run_id: str
) -> None:
    writer = session.writer(configured, run_id)
    state = session.read_state(configured.name)
    applied = False
    last: dict[str, Any] | None = None
    for message in src.read(configured, state):
        if isinstance(message, Records):
            if not applied:
                writer.apply_schema(message.batch.schema)
                applied = True
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


# --------------------------------------------------------------------------- tests


def test_registered_and_check(tmp_path: Path) -> None:
    assert destination_class("files") is FileDestination
    result = destination(tmp_path / "out").check()
    assert result.ok, result.message
    assert files(tmp_path / "out") == []
    with pytest.raises(ConfigError, match="format"):
        FileDestination.from_config({"path": str(tmp_path), "format": "xml"})


def test_append_commits_deterministic_files_then_state(tmp_path: Path) -> None:
    root = tmp_path / "out"
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with destination(root).open("p") as session:
        w = session.writer(stream("orders"), "run1")
        assert w.current_schema() is None
        w.apply_schema(schema)
        w.write(batch(id=[1, 2], name=["a", "b"]))
        w.write(batch(id=[3], name=["c"]))
        assert files(root / "orders") == [".part-00000001-0000.parquet.tmp"]
        assert ds.dataset(root / "orders", format="parquet").count_rows() == 0
        w.commit({"cursor": 3})
        w.write(batch(id=[4], name=["d"]))
        w.finish({"cursor": 4})
        assert session.read_state("orders") == {"cursor": 4}
    assert files(root / "orders") == ["part-00000001-0000.parquet", "part-00000002-0000.parquet"]
    doc = json.loads((root / "_aggregator_state" / "p" / "orders.json").read_text())
    assert doc == {
        "state": {"cursor": 4},
        "seq": 2,
        "files": ["orders/part-00000002-0000.parquet"],
    }
    assert table_of(root, "orders").to_pydict() == {"id": [1, 2, 3, 4], "name": list("abcd")}
    assert ds.dataset(root / "orders", format="parquet").to_table().num_rows == 4
    with destination(root).open("p") as session:
        assert session.read_state("orders") == {"cursor": 4}
        assert session.writer(stream("orders"), "r2").current_schema() == schema
        session.reset_state()
        assert session.read_state("orders") is None
        w = session.writer(stream("orders"), "r3")
        w.write(batch(id=[5], name=["e"]))
        w.finish({"cursor": 5})
    # a reset keeps the sequence: new files never overwrite old ones
    assert files(root / "orders")[-1] == "part-00000003-0000.parquet"
    assert table_of(root, "orders").column("id").to_pylist() == [1, 2, 3, 4, 5]


def test_crash_before_commit_and_between_rename_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    with destination(root).open("p") as session:
        w = session.writer(stream("t"), "r1")
        w.write(batch(x=[1, 2]))
        w.commit({"upto": 2})
        w.write(batch(x=[3]))
        w.quarantine(pa.table({"reason": ["r"], "position": ["p"], "raw": ["{}"]}))
        # the process dies: no commit, no abort
    assert files(root / "t") == [".part-00000002-0000.parquet.tmp", "part-00000001-0000.parquet"]
    with destination(root).open("p") as session:
        session.writer(stream("t"), "r2")  # opening cleans up
        assert session.read_state("t") == {"upto": 2}
    assert files(root / "t") == ["part-00000001-0000.parquet"]
    assert files(root / "t__quarantine") == []

    # crash after the data files got their final names but before the state was written
    real = FileSession.write_json

    def failing(self: FileSession, path: str, doc: Any) -> None:
        if path.endswith("/t.json"):
            raise OSError("disk gone")
        real(self, path, doc)

    with destination(root).open("p") as session:
        w = session.writer(stream("t"), "r3")
        w.write(batch(x=[3, 4]))
        monkeypatch.setattr(FileSession, "write_json", failing)
        with pytest.raises(OSError, match="disk gone"):
            w.commit({"upto": 4})
        monkeypatch.setattr(FileSession, "write_json", real)
    assert files(root / "t") == ["part-00000001-0000.parquet", "part-00000002-0000.parquet"]
    with destination(root).open("p") as session:
        w = session.writer(stream("t"), "r4")
        assert files(root / "t") == ["part-00000001-0000.parquet"]
        assert session.read_state("t") == {"upto": 2}
        w.write(batch(x=[3, 4]))
        w.finish({"upto": 4})
    assert files(root / "t") == ["part-00000001-0000.parquet", "part-00000002-0000.parquet"]
    assert table_of(root, "t").column("x").to_pylist() == [1, 2, 3, 4]


def test_replace_swaps_directories_at_finish(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with destination(root).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r1")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[1, 2]))
        w.finish({"run": 1})
    with destination(root).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r2")
        w.apply_schema(pa.schema([("x", pa.int64()), ("s", pa.string())]))
        w.write(batch(x=[7], s=["a"]))
        w.commit({"run": 2})
        w.write(batch(x=[8], s=["b"]))
        assert table_of(root, "t").column("x").to_pylist() == [1, 2]
        assert session.read_state("t") == {"run": 1}
        w.finish(None)
        assert session.read_state("t") == {"run": 2}
    assert table_of(root, "t").to_pydict() == {"x": [7, 8], "s": ["a", "b"]}
    assert files(root / "t") == ["part-00000002-0000.parquet", "part-00000002-0001.parquet"]
    assert sorted(p.name for p in root.iterdir()) == ["_aggregator_state", "t"]

    with destination(root).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r3")
        w.apply_schema(pa.schema([("x", pa.int64())]))
        w.write(batch(x=[100]))
        w.commit({"run": 3})
        w.abort()
        assert session.read_state("t") == {"run": 2}
    assert table_of(root, "t").to_pydict() == {"x": [7, 8], "s": ["a", "b"]}
    assert sorted(p.name for p in root.iterdir()) == ["_aggregator_state", "t"]


def test_replace_crash_leftovers_are_repaired_on_open(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with destination(root).open("p") as session:
        w = session.writer(stream("t", WriteMode.REPLACE), "r1")
        w.write(batch(x=[1]))
        w.finish({"run": 1})
        w = session.writer(stream("t", WriteMode.REPLACE), "r2")
        w.write(batch(x=[2]))
        w.commit({"run": 2})  # staging written, then the process dies
    assert (root / "t.__staging__r2").is_dir()
    # and a crash in the middle of a swap: the old table was renamed away
    (root / "t").rename(root / "t.__old__r9")
    with destination(root).open("p") as session:
        session.writer(stream("t", WriteMode.REPLACE), "r3")
        assert session.read_state("t") == {"run": 1}
    assert sorted(p.name for p in root.iterdir()) == ["_aggregator_state", "t"]
    assert table_of(root, "t").column("x").to_pylist() == [1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_merge_rewrites_with_last_row_per_key(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "out"
    schema = pa.schema([("k", pa.int64()), ("v", pa.string()), ("amount", pa.decimal128(10, 2))])

    def rows(k: list[int], v: list[str], a: list[str]) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(
            {"k": k, "v": v, "amount": [Decimal(x) for x in a]}, schema=schema
        )

    with destination(root, format=fmt).open("p") as session:
        w = session.writer(stream("t", WriteMode.MERGE, pk=("k",)), "r1")
        w.apply_schema(schema)
        w.write(rows([1, 2, 1], ["a", "b", "a2"], ["1.00", "2.00", "1.50"]))
        w.commit({"n": 1})
        assert session.read_state("t") is None
        w.finish({"n": 1})
        w = session.writer(stream("t", WriteMode.MERGE, pk=("k",)), "r2")
        w.apply_schema(schema)
        w.write(rows([2, 3], ["b2", "c"], ["-0.01", "3.00"]))
        w.write(rows([3], ["c2"], ["3.33"]))
        w.finish({"n": 2})
        assert session.read_state("t") == {"n": 2}
    got = table_of(root, "t", format=fmt)
    assert got.schema == schema
    assert got.to_pydict() == {
        "k": [1, 2, 3],
        "v": ["a2", "b2", "c2"],
        "amount": [Decimal("1.50"), Decimal("-0.01"), Decimal("3.33")],
    }
    ext = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}[fmt]
    assert files(root / "t") == [f"part-00000002-0000.{ext}"]


def test_schema_evolution_new_parts_carry_new_schema(tmp_path: Path) -> None:
    root = tmp_path / "out"
    v1 = pa.schema([("id", pa.int32()), ("d", pa.decimal128(12, 2))])
    v2 = pa.schema([("id", pa.int64()), ("d", pa.decimal128(20, 4)), ("extra", pa.string())])
    with destination(root).open("p") as session:
        w = session.writer(stream("t"), "r")
        w.apply_schema(v1)
        w.write(pa.RecordBatch.from_pydict({"id": [1], "d": [Decimal("1.50")]}, schema=v1))
        w.apply_schema(v2)
        w.write(
            pa.RecordBatch.from_pydict(
                {"id": [2], "d": [Decimal("2.1234")], "extra": ["x"]}, schema=v2
            )
        )
        w.finish({"v": 2})
        assert w.current_schema() == v2
    assert [pq.read_schema(root / "t" / f) for f in files(root / "t")] == [v1, v2]
    doc = json.loads((root / "_aggregator_state" / "p" / "t.schema.json").read_text())
    assert doc == {
        "columns": [
            {"name": "id", "type": "int64", "nullable": True},
            {"name": "d", "type": "decimal(20,4)", "nullable": True},
            {"name": "extra", "type": "string", "nullable": True},
        ]
    }
    assert table_of(root, "t").to_pylist() == [
        {"id": 1, "d": Decimal("1.5000"), "extra": None},
        {"id": 2, "d": Decimal("2.1234"), "extra": "x"},
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_exact_types_round_trip(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "out"
    table = exact_table()
    with destination(root, format=fmt).open("p") as session:
        w = session.writer(stream("exact"), "r")
        w.apply_schema(table.schema)
        for b in table.to_batches():
            w.write(b)
        w.finish({"done": True})
    got = table_of(root, "exact", format=fmt)
    assert got.schema == table.schema
    assert got.equals(table)


def test_text_formats_write_exact_text(tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl"):
        root = tmp_path / fmt
        with destination(root, format=fmt).open("p") as session:
            w = session.writer(stream("exact"), "r")
            w.write(exact_table().to_batches()[0])
            w.finish(None)
    csv_text = (tmp_path / "csv" / "exact" / "part-00000001-0000.csv").read_text()
    header, first = csv_text.splitlines()[:2]
    assert header.startswith('"id","amount","huge","at"')
    assert first.startswith(
        '1,"1234567890123456789012345678.1234567890",'
        '"1234567890123456789012345678901234567890.12345678901234567890",'
        '"2024-01-02T03:04:05.678901+00:00","2024-02-29T12:00:00.000000"'
    )
    line = (tmp_path / "jsonl" / "exact" / "part-00000001-0000.jsonl").read_text().splitlines()[0]
    row = json.loads(line)
    assert row["amount"] == "1234567890123456789012345678.1234567890"
    assert row["at"] == "2024-01-02T03:04:05.678901+00:00"
    assert row["uid"] == "12345678-1234-5678-1234-567812345678"
    assert row["tags"] == [1, 2, 3]
    assert row["point"] == {"x": 1.5, "label": "a"}
    assert row["blob"] == "AP8Q"
    assert row["big"] == 2**64 - 1


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partition_by_writes_hive_directories(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "out"
    schema = pa.schema([("day", pa.date32()), ("v", pa.int64())])
    data = pa.RecordBatch.from_pydict(
        {
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None, dt.date(2024, 1, 1)],
            "v": [1, 2, 3, 4],
        },
        schema=schema,
    )
    with destination(root, format=fmt, partition_by="day").open("p") as session:
        w = session.writer(stream("t"), "r")
        w.apply_schema(schema)
        w.write(data)
        w.finish({"n": 1})
    assert files(root / "t") == [
        f"day=2024-01-01/part-00000001-0000.{fmt}",
        f"day=2024-01-02/part-00000001-0001.{fmt}",
        f"day=__HIVE_DEFAULT_PARTITION__/part-00000001-0002.{fmt}",
    ]
    got = table_of(root, "t", format=fmt, partition_by="day")
    assert got.schema == schema
    assert sorted(got.to_pylist(), key=lambda r: r["v"]) == data.to_pylist()
    if fmt == "parquet":
        hive = ds.dataset(root / "t", format="parquet", partitioning="hive").to_table()
        assert sorted(hive.column("v").to_pylist()) == [1, 2, 3, 4]
    with (
        pytest.raises(ConfigError, match="partition column"),
        destination(root, partition_by="nope").open("p") as session,
    ):
        session.writer(stream("t"), "r").apply_schema(schema)


def test_quarantine_files(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with destination(root).open("p") as session:
        w = session.writer(stream("t"), "run-9")
        w.write(batch(x=[1]))
        w.quarantine(pa.table({"reason": ["bad"], "position": ["f:1"], "raw": ["{}"]}))
        w.commit({"n": 1})
    assert files(root / "t__quarantine") == ["part-00000001-0001.jsonl"]
    line = json.loads((root / "t__quarantine" / "part-00000001-0001.jsonl").read_text())
    assert {k: line[k] for k in ("run_id", "stream", "reason", "position", "raw")} == {
        "run_id": "run-9",
        "stream": "t",
        "reason": "bad",
        "position": "f:1",
        "raw": "{}",
    }


def test_compressed_jsonl(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with destination(root, format="jsonl", compression="gzip").open("p") as session:
        w = session.writer(stream("t"), "r")
        w.write(batch(x=[1, 2]))
        w.finish(None)
    assert files(root / "t") == ["part-00000001-0000.jsonl.gz"]
    got = table_of(root, "t", format="jsonl", compression="gzip")
    assert got.column("x").to_pylist() == [1, 2]
    with pytest.raises(ConfigError, match="compression"):
        destination(root, format="csv", compression="snappy").open("p")


def test_sqlite_to_files_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        """
        CREATE TABLE items (id INTEGER PRIMARY KEY, price DECIMAL_TEXT(12,2), at TIMESTAMPTZ,
                            meta JSON, qty INTEGER);
        INSERT INTO items VALUES (1, '9.99', '2024-01-01T10:00:00+02:00', '{"a":1}', 5);
        INSERT INTO items VALUES (2, '12.00', NULL, NULL, 'oops');
        INSERT INTO items VALUES (3, '0.01', '2024-03-01 00:00:00', '[]', 7);
        """
    )
    con.commit()
    con.close()
    src = SQLiteSource.from_config({"path": str(db), "batch_size": 2})
    assert isinstance(src, SQLiteSource)
    root = tmp_path / "lake"
    inc = stream("items", WriteMode.APPEND, sync_mode=SyncMode.INCREMENTAL, cursor_field="id")
    with destination(root).open("copy") as session:
        run_stream(src, inc, session, "a")
        run_stream(src, inc, session, "b")
        assert session.read_state("items") == {"cursor": 3, "rowid": 3}
    got = table_of(root, "items", pipeline="copy")
    assert got.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("price", pa.decimal128(12, 2)),
            ("at", TIMESTAMPTZ),
            ("meta", JSON),
            ("qty", pa.int64()),
        ]
    )
    assert got.to_pylist() == [
        {
            "id": 1,
            "price": Decimal("9.99"),
            "at": dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC),
            "meta": '{"a":1}',
            "qty": 5,
        },
        {
            "id": 3,
            "price": Decimal("0.01"),
            "at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
            "meta": "[]",
            "qty": 7,
        },
    ]
    quarantined = [
        json.loads(line)
        for f in files(root / "items__quarantine")
        for line in (root / "items__quarantine" / f).read_text().splitlines()
    ]
    assert [(q["reason"], q["position"]) for q in quarantined] == [
        ("column 'qty': 'oops' is not int64", "items:rowid=2")
    ]
