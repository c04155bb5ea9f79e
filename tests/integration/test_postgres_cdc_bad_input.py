"""Bad input around PostgreSQL reads and CDC that test_postgres_source.py does not cover:
a real password-checked role, infinities, unknown types in changes, keyless merge."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from aggregator.connectors.postgres import PostgresDestination, PostgresSource
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Records
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import load_pipeline
from tests.integration.databases.pg import run
from tests.integration.databases.pg_cdc import CdcSchema, cdc_schema

pytestmark = pytest.mark.integration

#: scripts/services.sh creates this role with scram-sha-256 authentication
ROLE, PASSWORD = "agg_password", "agg-password"
MERGE = ConfiguredStream("items", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("id",))


@pytest.fixture
def db(pg_url: str) -> Iterator[CdcSchema]:
    yield from cdc_schema(pg_url)


def _as_role(pg_url: str, password: str) -> str:
    return pg_url.replace("postgresql://postgres@", f"postgresql://{ROLE}:{password}@")


def test_password_is_checked_and_a_wrong_one_never_leaks(pg_url: str) -> None:
    right = PostgresSource.from_config({"url": _as_role(pg_url, PASSWORD)}).check()
    assert right.ok, f"{right.message} (scripts/services.sh start creates {ROLE})"
    host, port = "127.0.0.1", int(pg_url.rsplit(":", 1)[1].split("/")[0])
    wrong = {"host": host, "port": port, "user": ROLE, "password": "not-the-s3cret"}
    for config in (wrong, {"url": _as_role(pg_url, "not-the-s3cret")}):
        result = PostgresSource.from_config(config).check()
        assert not result.ok
        assert f"cannot connect to PostgreSQL at {host}:{port}/postgres" in result.message
        assert "check user and password" in result.message
        assert "not-the-s3cret" not in result.message
        with pytest.raises(ConnectorError) as info:
            list(PostgresSource.from_config({**config, "cdc": True}).read(MERGE, None))
        assert "check user and password" in info.value.message
        assert "not-the-s3cret" not in info.value.message
        dest = PostgresDestination.from_config(config)
        assert not dest.check().ok and "not-the-s3cret" not in dest.check().message


def test_unreachable_host_in_a_cdc_run_fails_the_run_with_the_place(
    store: MetadataStore, tmp_path: Path
) -> None:
    source = {"host": "127.0.0.1", "port": 1, "connect_timeout": 2, "cdc": True}
    streams = [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}]
    dest = {"type": "duckdb", "config": {"path": str(tmp_path / "o.duckdb")}}
    record = run(store, source, dest, streams, name="unreachable")
    assert record.status == "failed"
    assert "127.0.0.1:1/postgres" in (record.error or "")
    assert "check host and port" in (record.error or "")


def test_missing_table_in_a_cdc_pipeline(
    db: CdcSchema, store: MetadataStore, tmp_path: Path
) -> None:
    streams = [{"name": "absent", "sync_mode": "incremental", "primary_key": ["id"]}]
    dest = {"type": "duckdb", "config": {"path": str(tmp_path / "o.duckdb")}}
    record = run(store, db.cdc_source(), dest, streams, name="missing")
    assert record.status == "failed"
    assert "'absent' is not a table or view" in (record.error or "")
    assert not db.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE %s", [db.prefix + "%"]
    )


def test_merge_without_key_is_refused_before_reading(db: CdcSchema, tmp_path: Path) -> None:
    db.execute("CREATE TABLE nokey (v text)")
    spec = {
        "name": "nokey",
        "sources": [
            {
                "name": "db",
                "type": "postgres",
                "config": db.source(),
                "streams": [{"name": "nokey", "write_mode": "merge"}],
            }
        ],
    }
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        ConfigError, match=r"p.yml:\d+: sources.0.streams.0.*merge needs primary_key"
    ):
        load_pipeline(path)
    # a key declared in the pipeline is not enough for CDC: changes are keyed by the table's
    stream = ConfiguredStream("nokey", SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("v",))
    with pytest.raises(ConfigError, match=r"'nokey'.*single-column primary key \(found none\)"):
        list(PostgresSource.from_config(db.cdc_source()).read(stream, None))


def test_infinite_dates_and_timestamps_are_clamped(
    db: CdcSchema, store: MetadataStore, tmp_path: Path
) -> None:
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, ts timestamptz, tn timestamp, d date, "
        "tl timestamp[])"
    )
    db.execute(
        "INSERT INTO items VALUES (1, 'infinity', '-infinity', 'infinity', "
        "ARRAY['infinity', '2024-01-02', NULL]::timestamp[]), "
        "(2, '-infinity', 'infinity', '-infinity', NULL), (3, '2024-01-02 03:04:05+00', "
        "'2024-01-02 03:04:05', '2024-01-02', ARRAY['-infinity']::timestamp[])"
    )
    top, bottom = dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)
    msgs = list(PostgresSource.from_config(db.source()).read(ConfiguredStream("items"), None))
    rows = [r for m in msgs if isinstance(m, Records) for r in m.batch.to_pylist()]
    rows.sort(key=lambda r: r["id"])
    assert rows[0]["ts"] == top.replace(tzinfo=dt.UTC) and rows[0]["tn"] == bottom
    assert rows[0]["d"] == dt.date(9999, 12, 31) and rows[0]["tl"] == [
        top,
        dt.datetime(2024, 1, 2),
        None,
    ]
    assert rows[1]["ts"] == bottom.replace(tzinfo=dt.UTC) and rows[1]["tn"] == top
    assert rows[1]["d"] == dt.date(1, 1, 1) and rows[1]["tl"] is None
    assert rows[2]["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert rows[2]["tl"] == [bottom]
    # and they load into a destination
    dest = {"type": "duckdb", "config": {"path": str(tmp_path / "o.duckdb")}}
    record = run(store, db.source(), dest, [{"name": "items"}], name="inf")
    assert record.status == "succeeded", record.error
    with duckdb.connect(str(tmp_path / "o.duckdb")) as con:
        got = con.execute("SELECT id, tn, d FROM items ORDER BY id").fetchall()
    assert got == [
        (1, bottom, dt.date(9999, 12, 31)),
        (2, top, dt.date(1, 1, 1)),
        (3, dt.datetime(2024, 1, 2, 3, 4, 5), dt.date(2024, 1, 2)),
    ]


def test_unknown_types_in_changes_load_as_text_and_say_so(db: CdcSchema) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, p point, iv interval, r int4range)")
    db.execute("INSERT INTO items VALUES (1, '(1,2)', '1 day', '[1,5)')")
    src = PostgresSource.from_config(db.cdc_source())
    first = list(src.read(MERGE, None))
    notes = [m.message for m in first if isinstance(m, Log) and m.level == "warning"]
    assert any("items.p" in n and "point" in n and "as string" in n for n in notes)
    assert any("items.r" in n and "int4range" in n for n in notes)
    state = [m.state for m in first if isinstance(m, Checkpoint)][-1]
    db.execute("UPDATE items SET p = '(3,4)', iv = '2 hours', r = '[2,3]' WHERE id = 1")
    db.execute("INSERT INTO items VALUES (2, NULL, '-1 mon', 'empty')")
    later = list(src.read(MERGE, state))
    rows = sorted(
        (r for m in later if isinstance(m, Records) for r in m.batch.to_pylist()),
        key=lambda r: r["id"],
    )
    assert [(r["id"], r["p"], r["iv"], r["r"], r["_aggregator_deleted"]) for r in rows] == [
        (1, "(3,4)", "02:00:00", "[2,4)", False),
        (2, None, "-1 mons", "empty", False),
    ]
    assert any(isinstance(m, Log) and "as string" in m.message for m in later)
