"""SIGKILL ``aggregator run --follow`` (PostgreSQL CDC -> DuckDB) several times while the
source keeps changing; after resuming, the destination equals the source exactly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
import yaml

from tests.integration.databases.pg_cdc import (
    ITEMS_DDL,
    CdcSchema,
    ChangeWriter,
    cdc_schema,
    fill,
    pipeline,
    rows_of,
)
from tests.reliability.killing import kill_after_checkpoints, run_cli

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture
def db(pg_url: str) -> Iterator[CdcSchema]:
    yield from cdc_schema(pg_url)


def _no_duplicates(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        if "items" not in tables:  # killed before the snapshot was committed
            return 0
        row = con.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()
    assert row is not None and row[0] == row[1], f"duplicate keys: {row}"
    return int(row[0])


def test_cdc_follow_survives_kills(db: CdcSchema, tmp_path: Path) -> None:
    db.execute(ITEMS_DDL)
    fill(db.con, 5000)
    out = tmp_path / "out.duckdb"
    spec = pipeline(
        "cdckill",
        db.cdc_source(batch_size=200, cdc_max_changes=400),
        {"type": "duckdb", "config": {"path": str(out)}},
    )
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    home = tmp_path / "home"
    stop = threading.Event()
    writes: list[int] = []

    def write() -> None:  # keeps changing the source while the CLI runs and dies
        with psycopg.connect(db.url, autocommit=True) as con:
            con.execute(f'SET search_path TO "{db.name}"')
            writer = ChangeWriter(con, next_id=5001, seed=11)
            while not stop.is_set():
                writer.transaction(20)
                time.sleep(0.05)
            writes.append(writer.changes)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    follow = ["run", str(path), "--follow", "--commit-interval", "0.2"]
    try:
        for checkpoints in (1, 4, 9):  # during or after the snapshot, then mid-stream
            seen = kill_after_checkpoints(follow, home, checkpoints, jitter=0.5)
            assert seen >= checkpoints
            if out.exists():
                _no_duplicates(out)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert writes and writes[0] > 0
    spec["sources"][0]["config"]["cdc_max_changes"] = 1_000_000  # catch up in one run
    path.write_text(yaml.safe_dump(spec))
    for _ in range(3):
        done = run_cli(["run", str(path), "--json"], home)
        assert done.returncode == 0, done.stderr[-3000:]
        if sum(s["rows_loaded"] for s in json.loads(done.stdout)["streams"]) == 0:
            break
    count = _no_duplicates(out)
    with duckdb.connect(str(out), read_only=True) as con:
        got = rows_of(con, text="varchar")
    expected = rows_of(db.con)
    assert count == len(expected)
    assert got == expected
