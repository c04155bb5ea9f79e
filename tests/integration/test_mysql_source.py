"""MySQL / MariaDB source against the real test server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from aggregator.connectors.mysql import MySQLSource
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec

pytestmark = pytest.mark.integration


class MyDB:
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"t_{uuid.uuid4().hex[:10]}"
        src = MySQLSource.from_config({"url": url})
        assert isinstance(src, MySQLSource)
        self.con = src.config.connect()
        self.execute(f"CREATE DATABASE `{self.name}`")
        self.execute(f"USE `{self.name}`")

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def source(self, **extra: Any) -> MySQLSource:
        src = MySQLSource.from_config({"url": self.url.rstrip("/") + "/" + self.name, **extra})
        assert isinstance(src, MySQLSource)
        return src


@pytest.fixture
def db(mysql_url: str) -> Iterator[MyDB]:
    d = MyDB(mysql_url)
    yield d
    d.execute(f"DROP DATABASE `{d.name}`")
    d.con.close()


def table_of(msgs: list[Message]) -> pa.Table:
    return pa.Table.from_batches([m.batch for m in msgs if isinstance(m, Records)])


DDL = """CREATE TABLE t (
  id int PRIMARY KEY, u bigint unsigned, tiny tinyint, amount decimal(12,2),
  big decimal(50,10), f float, d double, name varchar(20), body text, doc json,
  born date, at datetime(6), ts timestamp(6) NULL, dur time, y year, raw varbinary(8),
  e enum('a','b'), flags bit(4)
)"""
ROW = """INSERT INTO t VALUES (1, 18446744073709551615, -128, 12.30,
  1234567890123456789012345678901234567890.0123456789, 1.5, 2.25, 'ünï', 'long text',
  '{"a": [1, 2]}', '2024-01-02', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5',
  '838:59:59', 2024, x'00ff', 'b', b'1010'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL)"""


def test_discovery_and_exact_values(db: MyDB) -> None:
    db.execute(DDL)
    db.execute(ROW)
    stream = db.source().discover().get("t")
    assert stream is not None and stream.primary_key == ("id",)
    types = {f.name: f.type for f in stream.schema}
    assert types["u"] == pa.uint64() and types["tiny"] == pa.int8()
    assert types["amount"] == pa.decimal128(12, 2) and types["big"] == pa.decimal256(50, 10)
    assert types["doc"] == JSON and types["at"] == TIMESTAMP and types["ts"] == TIMESTAMPTZ
    assert types["born"] == pa.date32() and types["raw"] == pa.binary()
    msgs = list(db.source().read(ConfiguredStream("t"), None))
    assert any(isinstance(m, Log) and "flags" in m.message for m in msgs)
    assert [m.state for m in msgs if isinstance(m, Checkpoint)] == [{"complete": True}]
    rows = table_of(msgs).sort_by("id").to_pylist()
    one = rows[0]
    assert one["u"] == 18446744073709551615 and one["amount"] == Decimal("12.30")
    assert one["big"] == Decimal("1234567890123456789012345678901234567890.0123456789")
    assert one["f"] == 1.5 and one["name"] == "ünï" and one["e"] == "b"
    assert one["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert one["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC)
    assert one["born"] == dt.date(2024, 1, 2) and one["dur"] == "838:59:59"
    assert one["raw"] == b"\x00\xff" and one["y"] == 2024
    assert '"a"' in one["doc"]
    assert all(v is None for k, v in rows[1].items() if k != "id")


def test_zero_date_is_quarantined_with_key(db: MyDB) -> None:
    db.execute("SET SESSION sql_mode = ''")
    db.execute("CREATE TABLE z (id int PRIMARY KEY, d date)")
    db.execute("INSERT INTO z VALUES (1, '2024-01-01'), (2, '0000-00-00')")
    msgs = list(db.source().read(ConfiguredStream("z"), None))
    q = [m.rows.to_pylist() for m in msgs if isinstance(m, Quarantined)]
    assert len(q) == 1 and q[0][0]["position"] == "z:id=2" and "0000-00-00" in q[0][0]["reason"]
    assert table_of(msgs).column("id").to_pylist() == [1]


def test_incremental_resumes_after_cursor(db: MyDB) -> None:
    db.execute("CREATE TABLE inc (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO inc VALUES " + ", ".join(f"({i}, {i // 3})" for i in range(1, 21)))
    src = db.source(batch_size=4)
    stream = ConfiguredStream("inc", sync_mode=SyncMode.INCREMENTAL, cursor_field="v")
    msgs = list(src.read(stream, None))
    assert sorted(table_of(msgs).column("id").to_pylist()) == list(range(1, 21))
    states = [m.state for m in msgs if isinstance(m, Checkpoint)]
    assert states[-1] == {"cursor": 6}
    mid = states[0]
    resumed = table_of(list(src.read(stream, mid))).column("v").to_pylist()
    assert min(resumed) == mid["cursor"] + 1


def test_end_to_end_into_duckdb(db: MyDB, store: MetadataStore, tmp_path: Path) -> None:
    db.execute(DDL)
    db.execute(ROW)
    spec = PipelineSpec.model_validate(
        {
            "name": "my",
            "sources": [
                {
                    "name": "m",
                    "type": "mysql",
                    "config": {"url": db.url.rstrip("/") + "/" + db.name},
                    "streams": [{"name": "t", "primary_key": ["id"]}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "w.duckdb")}},
        }
    )
    record = LocalEngine(store).run(spec)
    assert record.status == "succeeded", record.error
    assert record.streams[0].rows_loaded == 2


def test_bad_input(db: MyDB, mysql_url: str) -> None:
    with pytest.raises(ConfigError, match="nope"):
        db.source(tables=["nope"]).discover()
    wrong = mysql_url.replace("agg:agg@", "agg:wrong-pw-9@")
    result = MySQLSource.from_config({"url": wrong + db.name}).check()
    assert not result.ok and "check user and password" in result.message
    assert "wrong-pw-9" not in result.message
    down = MySQLSource.from_config(
        {"host": "127.0.0.1", "port": 1, "database": "x", "connect_timeout": 2}
    ).check()
    assert not down.ok and "check host and port" in down.message
    assert pymysql is not None


def test_full_refresh_in_key_order_resumes_after_key(db: MyDB) -> None:
    db.execute("CREATE TABLE k (a int, b varchar(5), v int, PRIMARY KEY (a, b))")
    db.execute("INSERT INTO k SELECT seq % 3, concat('x', seq), seq FROM seq_1_to_10")
    src = db.source(batch_size=4, checkpoint_rows=3)  # a checkpoint at each batch end
    msgs = list(src.read(ConfiguredStream("k"), None))
    states = [m.state for m in msgs if isinstance(m, Checkpoint)]
    assert states == [
        {"after": [1, "x1"]},
        {"after": [2, "x2"]},
        {"complete": True},  # the last batch (2 rows) is below checkpoint_rows
    ]
    keys = [(r["a"], r["b"]) for r in table_of(msgs).to_pylist()]
    assert keys[:5] == [(0, "x3"), (0, "x6"), (0, "x9"), (1, "x1"), (1, "x10")]
    resumed = list(src.read(ConfiguredStream("k"), {"after": list(keys[3])}))
    assert [(r["a"], r["b"]) for r in table_of(resumed).to_pylist()] == keys[4:]


def test_incremental_text_cursor_is_escaped(db: MyDB) -> None:
    db.execute("CREATE TABLE q (id int PRIMARY KEY, name varchar(20))")
    db.execute("INSERT INTO q VALUES (1, 'a%s'), (2, 'it''s'), (3, 'z\\\\')")
    stream = ConfiguredStream("q", sync_mode=SyncMode.INCREMENTAL, cursor_field="name")
    msgs = list(db.source().read(stream, {"cursor": "it's"}))
    assert table_of(msgs).to_pylist() == [{"id": 3, "name": "z\\"}]
    msgs = list(db.source().read(stream, {"cursor": "a%s"}))
    assert table_of(msgs).column("id").to_pylist() == [2, 3]


def test_mariadb_uuid_is_typed_exactly_on_both_read_paths(db: MyDB) -> None:
    from aggregator.connectors.mysql.source import TableReader
    from aggregator.core.types import UUID

    values = [uuid.UUID(int=0), uuid.uuid4(), uuid.UUID(int=2**128 - 1), None]
    db.execute("CREATE TABLE u (id int PRIMARY KEY, uid uuid)")
    rows = ", ".join(
        f"({i}, {'NULL' if v is None else repr(str(v))})" for i, v in enumerate(values)
    )
    db.execute(f"INSERT INTO u VALUES {rows}")
    src = db.source()
    stream = src.discover().get("u")
    assert stream is not None and stream.schema.field("uid").type == UUID
    msgs = list(src.read(ConfiguredStream("u"), None))  # connectorx
    assert not any(isinstance(m, Quarantined) for m in msgs)
    assert table_of(msgs).sort_by("id").column("uid").to_pylist() == values
    table = next(t for t in src._tables() if t.name == "u")
    reader = TableReader(src.config, table, ConfiguredStream("u"))
    con = reader.connect()  # pymysql, raw text (the CDC snapshot and lookups)
    try:
        fetched = [b for b, _ in reader.fetch(con, reader.select + " ORDER BY id")]
    finally:
        con.close()
    assert pa.Table.from_batches(fetched).column("uid").to_pylist() == values
