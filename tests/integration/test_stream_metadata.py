"""Stream metadata (keys, cursor, size estimates, native types) stored with schema versions.

Each source runs through the local engine into DuckDB against a real server or real plugin;
the newest schema version in the metadata store must hold exactly what the source knows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.connectors.mysql import MySQLSource
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec
from tests.integration.databases.pg import PgSchema, pg_schema
from tests.integration.rest.server import Server
from tests.integration.test_singer_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.integration


def run(store: MetadataStore, tmp_path: Path, source: dict[str, Any]) -> None:
    spec = PipelineSpec.model_validate(
        {
            "name": "meta",
            "sources": [{"name": "s", **source}],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "w.duckdb")}},
        }
    )
    record = LocalEngine(store).run(spec)
    assert record.status == "succeeded", record.error


def newest(store: MetadataStore, stream: str) -> dict[str, Any]:
    versions = store.schema_versions("meta", stream)
    assert versions, f"no schema version of {stream!r}"
    meta = versions[-1]["stream_metadata"]
    assert isinstance(meta, dict)
    return meta


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def test_postgres(pg: PgSchema, store: MetadataStore, tmp_path: Path) -> None:
    pg.execute(
        "CREATE TABLE orders (id bigint, line int, amount numeric(12,2) NOT NULL, "
        "note varchar(40), at timestamptz, PRIMARY KEY (id, line))"
    )
    pg.execute("INSERT INTO orders SELECT i, 1, i * 1.5, 'n', now() FROM generate_series(1, 300) i")
    pg.execute("ANALYZE orders")
    pages = pg.execute("SELECT relpages FROM pg_class WHERE oid = 'orders'::regclass")[0][0]
    streams = [{"name": "orders", "sync_mode": "incremental", "cursor_field": "at"}]
    run(store, tmp_path, {"type": "postgres", "config": pg.source(), "streams": streams})
    meta = newest(store, "orders")
    assert meta["primary_key"] == ["id", "line"]
    assert meta["cursor_candidates"] == ["id", "line", "amount", "at"]
    assert meta["cursor_field"] == "at" and meta["sync_mode"] == "incremental"
    assert meta["declared_types"] == {
        "id": "bigint",
        "line": "integer",
        "amount": "numeric(12,2)",
        "note": "character varying(40)",
        "at": "timestamp with time zone",
    }
    assert meta["estimated_rows"] == 300
    assert meta["estimated_bytes"] == pages * 8192 and pages > 0
    assert meta["table"] == "orders" and meta["schema"] == pg.name


def test_mysql(mysql_url: str, store: MetadataStore, tmp_path: Path) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = MySQLSource.from_config({"url": mysql_url})
    assert isinstance(admin, MySQLSource)
    con = admin.config.connect()
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(
                f"CREATE TABLE `{name}`.items (sku varchar(12) PRIMARY KEY, "
                "qty int unsigned, price decimal(8,2), seen datetime(3)) ENGINE=InnoDB"
            )
            cur.execute(
                f"INSERT INTO `{name}`.items VALUES ('a', 1, 1.50, '2024-01-01'), "
                "('b', 2, 2.50, '2024-01-02')"
            )
            cur.execute(f"ANALYZE TABLE `{name}`.items")
            cur.fetchall()
            cur.execute(
                "SELECT TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'items'",
                [name],
            )
            rows, size = cur.fetchone()  # type: ignore[misc]
        config = {"url": mysql_url.rstrip("/") + "/" + name}
        run(store, tmp_path, {"type": "mysql", "config": config})
        meta = newest(store, "items")
        assert meta["primary_key"] == ["sku"]
        assert meta["cursor_candidates"] == ["qty", "price", "seen"]
        assert meta["declared_types"] == {
            "sku": "varchar(12)",
            "qty": "int(10) unsigned",
            "price": "decimal(8,2)",
            "seen": "datetime(3)",
        }
        assert meta["estimated_rows"] == rows == 2
        assert meta["estimated_bytes"] == size and size > 0
        assert meta["database"] == name and meta["sync_mode"] == "full_refresh"
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        con.close()


def test_files(store: MetadataStore, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("id,amount,day\n1,1.50,2024-01-01\n2,2.25,2024-01-02\n")
    (data / "b.csv").write_text("id,amount,day\n3,3.00,2024-01-03\n")
    size = sum(p.stat().st_size for p in data.iterdir())
    streams = [{"name": "sales", "path": str(data / "*.csv"), "primary_key": ["id"]}]
    run(store, tmp_path, {"type": "files", "config": {"streams": streams}})
    meta = newest(store, "sales")
    assert meta["primary_key"] == ["id"]
    assert meta["cursor_candidates"] == ["id", "amount", "day"]
    assert meta["declared_types"] == {
        "id": "int64",
        "amount": "decimal128(20, 2)",
        "day": "date32[day]",
    }
    assert meta["types_from"] == "inferred" and meta["format"] == "csv"
    assert meta["files"] == 2 and meta["estimated_bytes"] == size
    assert meta["estimated_rows"] is None


def test_rest(store: MetadataStore, tmp_path: Path) -> None:
    with Server() as server:
        config = {
            "base_url": server.url,
            "streams": [
                {
                    "name": "people",
                    "path": "/offset",
                    "records_path": "items",
                    "primary_key": ["id"],
                    "pagination": {"type": "offset", "page_size": 10, "total_path": "total"},
                },
                {
                    "name": "events",
                    "path": "/events",
                    "records_path": "data",
                    "pagination": {"type": "page_number"},
                    "incremental": {"cursor_field": "updated_at", "param": "since"},
                },
            ],
        }
        run(store, tmp_path, {"type": "rest", "config": config})
    people, events = newest(store, "people"), newest(store, "events")
    assert people["primary_key"] == ["id"] and people["cursor_candidates"] == []
    assert people["declared_types"] == {"id": "integer", "name": "string", "address": "object"}
    assert people["estimated_rows"] == 25  # the API's `total`
    assert people["estimated_bytes"] > 25 * 20 and people["path"] == "/offset"
    assert events["primary_key"] == [] and events["cursor_candidates"] == ["updated_at"]
    assert events["declared_types"] == {
        "id": "integer",
        "updated_at": "string (date-time)",
        "amount": "string",
    }
    assert events["estimated_rows"] is None and events["estimated_bytes"] is None


def test_singer_tap_jsonl(plugins: Path, store: MetadataStore, tmp_path: Path) -> None:
    data = tmp_path / "things.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": i, "amount": i + 0.25, "at": f"2024-01-01T10:00:0{i}Z"}) + "\n"
            for i in range(5)
        )
    )
    config = {
        "tap": "tap-jsonl",
        "config": {"path": str(data), "stream_name": "things", "primary_keys": ["id"]},
    }
    run(store, tmp_path, {"type": "singer", "config": config})
    meta = newest(store, "things")
    assert meta["primary_key"] == ["id"]
    assert meta["cursor_candidates"] == ["_sdc_last_modified"]
    assert meta["declared_types"]["id"] == "integer"
    assert meta["declared_types"]["amount"] == "number"
    assert meta["declared_types"]["at"] == "string (date-time)"
    assert meta["tap"] == "tap-jsonl" and meta["json_schema"]["type"] == "object"


def test_metadata_refreshes_the_newest_version(store: MetadataStore, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id\n1\n")
    streams = [{"name": "x", "path": str(path)}]
    run(store, tmp_path, {"type": "files", "config": {"streams": streams}})
    path.write_text("id\n1\n2\n3\n")
    run(store, tmp_path, {"type": "files", "config": {"streams": streams}})
    versions = store.schema_versions("meta", "x")
    assert len(versions) == 1  # same schema: no new version, its metadata is this run's
    assert versions[0]["stream_metadata"]["estimated_bytes"] == path.stat().st_size
