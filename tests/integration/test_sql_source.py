"""The generic SQLAlchemy source against SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from aggregator.connectors.sql import SQLSource
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec
from aggregator.testing import SourceTestSuite, read_stream
from tests.integration.databases.pg import PgSchema, pg_schema
from tests.integration.test_mysql_source import MyDB

pytestmark = pytest.mark.integration


def sqlite_db(tmp_path: Path) -> str:
    path = tmp_path / "db.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "create table orders (id integer primary key, amount decimal(10,2), "
        "placed timestamp, day date, note text, flag boolean, blob blob);"
        "insert into orders values "
        "(1, '1.50', '2024-01-02 03:04:05.25', '2024-01-02', 'a', 1, x'00ff'),"
        " (2, 2.25, '2024-01-03 00:00:00', '2024-01-03', null, 0, null),"
        " (3, '1.234', '2024-01-04 00:00:00', '2024-01-04', 'c', 1, null);"  # 3 decimals
        "create view big_orders as select id, amount from orders where amount > 2;"
    )
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def source(url: str, **extra: Any) -> SQLSource:
    src = SQLSource.from_config({"url": url, **extra})
    assert isinstance(src, SQLSource)
    return src


def test_sqlite_types_quarantine_and_views(tmp_path: Path) -> None:
    src = source(sqlite_db(tmp_path))
    catalog = src.discover()
    orders = catalog.get("orders")
    assert orders is not None and orders.primary_key == ("id",)
    types = {f.name: f.type for f in orders.schema}
    assert types == {
        "id": pa.int64(),
        "amount": pa.decimal128(10, 2),
        "placed": TIMESTAMP,
        "day": pa.date32(),
        "note": pa.string(),
        "flag": pa.bool_(),
        "blob": pa.binary(),
    }
    assert catalog.get("big_orders") is not None
    result = read_stream(src, "orders")
    rows = result.table.to_pylist()
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["amount"] == Decimal("1.50") and rows[1]["amount"] == Decimal("2.25")
    assert rows[0]["placed"] == dt.datetime(2024, 1, 2, 3, 4, 5, 250000)
    assert rows[0]["day"] == dt.date(2024, 1, 2) and rows[0]["flag"] is True
    assert rows[0]["blob"] == b"\x00\xff"
    assert len(result.quarantined) == 1
    bad = result.quarantined[0]
    assert bad["position"] == "orders:id=3" and "amount" in bad["reason"]
    assert result.states == [{"after": 3}, {"complete": True}]
    view = read_stream(src, "big_orders")
    assert view.table.column("id").to_pylist() == [2]


def test_incremental_by_cursor_resumes(tmp_path: Path) -> None:
    path = tmp_path / "inc.sqlite"
    con = sqlite3.connect(path)
    con.execute("create table ev (id integer primary key, at timestamp, v int)")
    con.executemany(
        "insert into ev values (?, ?, ?)",
        [(i, f"2024-01-01 00:00:{i // 3:02d}", i) for i in range(1, 31)],
    )
    con.commit()
    src = source(f"sqlite:///{path}", batch_size=4)
    first = read_stream(src, "ev", cursor_field="at")
    assert first.rows == 30 and first.final_state == {"cursor": "2024-01-01T00:00:10"}
    middle = first.states[0]
    again = read_stream(src, "ev", middle, cursor_field="at")
    seen = dt.datetime.fromisoformat(middle["cursor"])
    assert min(again.table.column("at").to_pylist()) > seen
    assert first.rows - again.rows == len([r for r in first.table.to_pylist() if r["at"] <= seen])
    con.execute("insert into ev values (31, '2024-01-01 00:00:11', 31)")
    con.commit()
    con.close()
    last = read_stream(src, "ev", first.final_state, cursor_field="at")
    assert last.table.column("id").to_pylist() == [31]


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def test_postgres_exact_types(pg: PgSchema) -> None:
    pg.execute(
        "create table t (id bigint primary key, n numeric(12,3), f float8, r real, "
        "ts timestamptz, naive timestamp, d date, tm time, u uuid, j jsonb, b bytea, "
        "s varchar(10), i interval, ok boolean)"
    )
    pg.execute(
        "insert into t values (1, 12.345, 1.5, 2.5, '2024-01-02 03:04:05+02', "
        "'2024-01-02 03:04:05', '2024-01-02', '10:11:12.5', "
        "'6f1c2c4e-3b1a-4c7e-9a51-0c2a1d2e3f40', '{\"a\": [1, 2]}', '\\x00ff', 'x', "
        "'1 day', true), (2, null, null, null, null, null, null, null, null, null, null, null, "
        "null, null)"
    )
    url = pg.url.replace("postgresql://", "postgresql+psycopg://")
    src = source(url, schema=pg.name)
    stream = src.discover().get("t")
    assert stream is not None
    types = {f.name: f.type for f in stream.schema}
    assert types["n"] == pa.decimal128(12, 3) and types["ts"] == TIMESTAMPTZ
    assert types["naive"] == TIMESTAMP and types["u"] == UUID and types["j"] == JSON
    assert types["r"] == pa.float32() and types["tm"] == pa.time64("us")
    result = read_stream(src, "t")
    assert (
        "warning",
        "t.i: type INTERVAL has no exact Arrow type here; loading its text form as string",
    ) in result.logs
    one, two = result.table.to_pylist()
    assert one["n"] == Decimal("12.345") and one["f"] == 1.5 and one["r"] == 2.5
    assert one["ts"] == dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC)
    assert one["naive"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert one["tm"] == dt.time(10, 11, 12, 500000)
    assert one["u"] == uuid.UUID("6f1c2c4e-3b1a-4c7e-9a51-0c2a1d2e3f40")
    assert one["j"] == '{"a": [1, 2]}' and one["b"] == b"\x00\xff" and one["ok"] is True
    assert one["i"] == "1 day, 0:00:00"
    assert all(v is None for k, v in two.items() if k != "id")


@pytest.fixture
def my(mysql_url: str) -> Iterator[MyDB]:
    d = MyDB(mysql_url)
    yield d
    d.execute(f"DROP DATABASE `{d.name}`")
    d.con.close()


def mysql_sqlalchemy_url(db: MyDB) -> str:
    return db.url.replace("mysql://", "mysql+pymysql://").rstrip("/") + "/" + db.name


def test_mariadb_through_pymysql_into_duckdb(
    my: MyDB, store: MetadataStore, tmp_path: Path
) -> None:
    my.execute(
        "CREATE TABLE t (id int PRIMARY KEY, u bigint unsigned, amount decimal(12,2), "
        "at datetime(6), d date, name varchar(20), raw varbinary(8), dur time)"
    )
    my.execute(
        "INSERT INTO t VALUES (1, 18446744073709551615, 12.30, '2024-01-02 03:04:05.123456', "
        "'2024-01-02', 'ünï', x'00ff', '01:02:03'), (2, 0, -1, NULL, NULL, NULL, NULL, NULL)"
    )
    src = source(mysql_sqlalchemy_url(my))
    stream = src.discover().get("t")
    assert stream is not None
    assert {f.name: f.type for f in stream.schema}["u"] == pa.uint64()
    spec = PipelineSpec.model_validate(
        {
            "name": "sqlmy",
            "sources": [
                {
                    "name": "m",
                    "type": "sql",
                    "config": {"url": mysql_sqlalchemy_url(my)},
                    "streams": [{"name": "t", "primary_key": ["id"]}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "w.duckdb")}},
        }
    )
    record = LocalEngine(store).run(spec)
    assert record.status == "succeeded", record.error
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        rows = con.execute("SELECT * FROM t ORDER BY id").fetchall()
    assert rows == [
        (
            1,
            18446744073709551615,
            Decimal("12.30"),
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
            dt.date(2024, 1, 2),
            "ünï",
            b"\x00\xff",
            dt.time(1, 2, 3),
        ),
        (2, 0, Decimal("-1.00"), None, None, None, None, None),
    ]


def test_bad_input_is_explained(tmp_path: Path, pg_url: str) -> None:
    from aggregator.core.errors import ConfigError

    with pytest.raises(ConfigError, match="url"):
        SQLSource.from_config({"url": "not a url"})
    missing = source(sqlite_db(tmp_path), tables=["nope"]).check()
    assert not missing.ok and "nope" in missing.message
    wrong = pg_url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:s3cret-pw@")
    wrong = wrong.replace("/postgres", "/no_such_database_x")
    result = source(wrong).check()
    assert not result.ok and "no_such_database_x" in result.message
    assert "s3cret-pw" not in result.message
    driver = source("postgresql+nodriver://u@127.0.0.1/x").check()
    assert not driver.ok and "driver" in driver.message


class TestSQLSourceSQLite(SourceTestSuite):
    source_class = SQLSource
    incremental_streams = {"orders": "id"}
    bad_field = "url"

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": sqlite_db(tmp_path), "tables": ["orders"]}

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "url": "::"}

    @pytest.fixture
    def failing_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": f"sqlite:///{tmp_path}/no/such/dir/x.sqlite"}


class TestSQLSourcePostgres(SourceTestSuite):
    source_class = SQLSource
    incremental_streams = {"items": "id"}
    bad_field = "batch_size"

    @pytest.fixture
    def config(self, pg: PgSchema) -> dict[str, Any]:
        pg.execute("create table items (id int primary key, v text)")
        pg.execute("insert into items select g, 'v' || g from generate_series(1, 10) g")
        return {"url": pg.url.replace("postgresql://", "postgresql+psycopg://"), "schema": pg.name}

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "batch_size": 0}

    @pytest.fixture
    def failing_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "url": "postgresql+psycopg://postgres@127.0.0.1:1/x"}
