"""SIGKILL pipelines that read from or write to PostgreSQL; re-runs end with exact data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.databases.pg import PgSchema, pg_schema
from tests.reliability.killing import kill_after_checkpoints, run_cli
from tests.support import pipeline_dict

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CLI = Path(__file__).with_name("cli_with_test_source.py")
ROWS = 4000


@pytest.fixture
def db(pg_url: str) -> Iterator[PgSchema]:
    yield from pg_schema(pg_url)


def _write(tmp: Path, spec: dict[str, Any], name: str) -> Path:
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _counts(db: PgSchema, table: str) -> tuple[int, int]:
    row = db.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}")[0]
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_postgres_destination_survives_kills(db: PgSchema, tmp_path: Path, mode: str) -> None:
    spec = pipeline_dict(str(tmp_path), mode, rows=ROWS, batch=50, delay=0.02)
    spec["destination"] = {"type": "postgres", "config": db.destination()}
    pipeline = _write(tmp_path, spec, mode)
    home = tmp_path / "home"
    for checkpoints in (3, 9):
        kill_after_checkpoints(["run", str(pipeline)], home, checkpoints, CLI)
        count, distinct = _counts(db, "numbers")
        assert count == distinct and 0 < count < ROWS
        state = db.execute(
            "SELECT state FROM _aggregator_state WHERE stream = 'numbers' ORDER BY seq DESC LIMIT 1"
        )
        assert state[0][0] == {"after": count}  # the state matches the committed rows
    done = run_cli(["run", str(pipeline)], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _counts(db, "numbers") == (ROWS, ROWS)
    assert db.execute("SELECT min(id), max(id) FROM numbers") == [(1, ROWS)]


def test_postgres_source_incremental_survives_kills(
    db: PgSchema, pg_url: str, tmp_path: Path
) -> None:
    db.execute("CREATE TABLE src (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO src SELECT g, md5(g::text) FROM generate_series(1, 30000) g")
    target = PgSchema(pg_url)
    try:
        spec = {
            "name": "pgkill",
            "sources": [
                {
                    "name": "db",
                    "type": "postgres",
                    "config": db.source(batch_size=100),
                    "streams": [
                        {
                            "name": "src",
                            "sync_mode": "incremental",
                            "cursor_field": "id",
                            "write_mode": "append",
                        }
                    ],
                }
            ],
            "destination": {"type": "postgres", "config": target.destination()},
        }
        pipeline = _write(tmp_path, spec, "pgkill")
        home = tmp_path / "home"
        kill_after_checkpoints(["run", str(pipeline)], home, 5, CLI, jitter=0.1)
        count, distinct = _counts(target, "src")
        assert count == distinct
        done = run_cli(["run", str(pipeline)], home, CLI)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _counts(target, "src") == (30000, 30000)
        missing = target.execute(
            f'SELECT count(*) FROM "{db.name}".src s WHERE NOT EXISTS '
            f"(SELECT 1 FROM src t WHERE t.id = s.id AND t.v = s.v)"
        )
        assert missing == [(0,)]
    finally:
        target.drop()
