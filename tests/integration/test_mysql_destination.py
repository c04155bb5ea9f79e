"""MySQL / MariaDB destination: transactions with state, merge, replace, round trip."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aggregator.connectors.mysql import MySQLDestination, MySQLSource
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.types import JSON, TIMESTAMPTZ, UUID
from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, pg_schema, run

pytestmark = pytest.mark.integration


@pytest.fixture
def target(mysql_url: str) -> Iterator[tuple[MySQLDestination, Any]]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = mysql_url.rstrip("/") + "/" + name
    dest = MySQLDestination.from_config({"url": url})
    assert isinstance(dest, MySQLDestination)
    dest.open("p").close()
    con = dest.config.connect()
    yield dest, con
    with con.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    con.close()


def query(con: Any, sql: str) -> list[tuple[Any, ...]]:
    with con.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def stream(name: str, mode: WriteMode, pk: tuple[str, ...] = ()) -> ConfiguredStream:
    return ConfiguredStream(name=name, write_mode=mode, primary_key=pk)


def test_append_state_and_abort(target: tuple[MySQLDestination, Any]) -> None:
    dest, con = target
    b = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2], pa.int64()),
            pa.array([Decimal("1.10"), None], pa.decimal128(12, 2)),
            pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), None], TIMESTAMPTZ),
            pa.ExtensionArray.from_storage(JSON, pa.array(['{"a": 1}', None])),
            pa.ExtensionArray.from_storage(
                UUID, pa.array([uuid.UUID(int=5).bytes, None], pa.binary(16))
            ),
        ],
        names=["id", "amount", "at", "doc", "uid"],
    )
    with dest.open("p") as session:
        w = session.writer(stream("a", WriteMode.APPEND), "r1")
        w.apply_schema(b.schema)
        w.write(b)
        w.commit({"n": 2})
        w.write(b.slice(0, 1))
        w.abort()
        assert session.read_state("a") == {"n": 2}
        session.reset_state("a")
        assert session.read_state("a") is None
    rows = query(con, "SELECT id, amount, at, doc, uid FROM a ORDER BY id")
    assert rows[0][:3] == (1, Decimal("1.10"), dt.datetime(2024, 1, 2, 3, 4, 5, 6))
    assert '"a"' in rows[0][3] and rows[0][4] == str(uuid.UUID(int=5))
    assert len(rows) == 2


def test_merge_and_replace(target: tuple[MySQLDestination, Any]) -> None:
    dest, con = target
    with dest.open("p") as session:
        w = session.writer(stream("m", WriteMode.MERGE, ("id",)), "r")
        b = pa.RecordBatch.from_pydict(
            {"id": pa.array([1, 2, 1], pa.int64()), "v": ["a", "b", "c"]}
        )
        w.apply_schema(b.schema)
        w.write(b)
        w.finish({"s": 1})
        w = session.writer(stream("m", WriteMode.MERGE, ("id",)), "r2")
        w.write(pa.RecordBatch.from_pydict({"id": pa.array([2], pa.int64()), "v": ["B"]}))
        w.finish({"s": 2})
        with pytest.raises(ConfigError, match="primary_key"):
            session.writer(stream("m", WriteMode.MERGE), "r")
        r = session.writer(stream("m", WriteMode.REPLACE), "r3")
        nb = pa.RecordBatch.from_pydict({"id": pa.array([9], pa.int64()), "v": ["z"]})
        r.apply_schema(nb.schema)
        r.write(nb)
        r.commit({"half": 1})
        assert query(con, "SELECT id, v FROM m ORDER BY id") == [(1, "c"), (2, "B")]
        r.finish({"done": 1})
        assert session.read_state("m") == {"done": 1}
    assert query(con, "SELECT id, v FROM m") == [(9, "z")]


def test_postgres_to_mysql_and_back_through_engine(
    pg_url: str, target: tuple[MySQLDestination, Any], store: MetadataStore, tmp_path: Path
) -> None:
    dest, con = target
    for db in pg_schema(pg_url):
        db.execute("CREATE TABLE items (id int PRIMARY KEY, amount numeric(10,3), at timestamp)")
        db.execute(
            "INSERT INTO items SELECT g, g / 7.0, timestamp '2024-01-01' + g * interval '1 ms' "
            "FROM generate_series(1, 500) g"
        )
        url = dest.config.url
        assert url is not None
        record = run(
            store,
            db.source(),
            {"type": "mysql", "config": {"url": url.get_secret_value()}},
            [{"name": "items", "primary_key": ["id"], "write_mode": "merge"}],
        )
        assert record.status == "succeeded", record.error
        assert query(con, "SELECT count(*), sum(amount) FROM items") == [
            (500, db.execute("SELECT sum(round(g / 7.0, 3)) FROM generate_series(1, 500) g")[0][0])
        ]
        back = MySQLSource.from_config({"url": url.get_secret_value()})
        stream_ = back.discover().get("items")
        assert stream_ is not None and stream_.schema.field("amount").type == pa.decimal128(10, 3)
        assert isinstance(db, PgSchema)
