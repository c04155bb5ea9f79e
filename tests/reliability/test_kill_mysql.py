"""SIGKILL pipelines reading MariaDB (binlog CDC and full refresh); re-runs end exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from tests.integration.test_mysql_source import MyDB
from tests.reliability.killing import kill_after_checkpoints, run_cli

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CLI = Path(__file__).with_name("cli_with_test_source.py")


@pytest.fixture
def db(mysql_url: str) -> Iterator[MyDB]:
    d = MyDB(mysql_url)
    yield d
    d.execute(f"DROP DATABASE `{d.name}`")
    d.con.close()


def _pipeline(tmp: Path, db: MyDB, stream: dict[str, Any], **config: Any) -> Path:
    spec = {
        "name": "mykill",
        "sources": [
            {
                "name": "m",
                "type": "mysql",
                "config": {"url": db.url.rstrip("/") + "/" + db.name, **config},
                "streams": [stream],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp / "w.duckdb")}},
    }
    path = tmp / "mykill.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _dest(tmp: Path, table: str = "items") -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp / "w.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT id, v, n FROM {table} ORDER BY id").fetchall()


def _counts(tmp: Path) -> tuple[int, int]:
    with duckdb.connect(str(tmp / "w.duckdb"), read_only=True) as con:
        row = con.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_kill_during_binlog_cdc_then_resume(db: MyDB, tmp_path: Path) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n bigint)")
    db.execute("INSERT INTO items SELECT seq, concat('v', seq), seq FROM seq_1_to_10000")
    stream = {"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}
    pipeline = _pipeline(tmp_path, db, stream, cdc=True, batch_size=200, checkpoint_rows=200)
    home = tmp_path / "home"
    # kill during the initial snapshot: it resumes after the last committed key
    kill_after_checkpoints(["run", str(pipeline)], home, 8, CLI, jitter=0.05)
    count, distinct = _counts(tmp_path)
    assert count == distinct and 0 < count < 10000
    done = run_cli(["run", str(pipeline)], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _dest(tmp_path) == db.execute("SELECT id, v, n FROM items ORDER BY id")
    # about 10,000 changed keys in 200 transactions, then kills while they are delivered
    for i in range(50):
        lo = i * 200 + 1
        db.execute(f"UPDATE items SET v = 'u{i}', n = n + 1 WHERE id BETWEEN {lo} AND {lo + 99}")
        db.execute(f"DELETE FROM items WHERE id BETWEEN {lo + 100} AND {lo + 119}")
        db.execute(
            f"INSERT INTO items SELECT seq, 'new', {i} FROM seq_{10000 + lo}_to_{10000 + lo + 79}"
        )
        db.execute(f"UPDATE items SET id = -id WHERE id = {lo + 150}")  # a key that moves
    for checkpoints in (4, 12):
        kill_after_checkpoints(["run", str(pipeline)], home, checkpoints, CLI, jitter=0.05)
        count, distinct = _counts(tmp_path)
        assert count == distinct  # merge: never a duplicate key
    done = run_cli(["run", str(pipeline)], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = db.execute("SELECT id, v, n FROM items ORDER BY id")
    assert len(expected) == 10000 - 1000 + 4000
    assert _dest(tmp_path) == expected


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_kill_during_full_refresh_then_rerun(db: MyDB, tmp_path: Path, mode: str) -> None:
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n bigint)")
    db.execute("INSERT INTO items SELECT seq, md5(seq), seq FROM seq_1_to_15000")
    stream: dict[str, Any] = {"name": "items", "write_mode": mode, "primary_key": ["id"]}
    pipeline = _pipeline(tmp_path, db, stream, batch_size=300, checkpoint_rows=300)
    home = tmp_path / "home"
    first = run_cli(["run", str(pipeline)], home, CLI)
    assert first.returncode == 0, first.stderr[-2000:]
    db.execute("UPDATE items SET v = 'changed' WHERE id % 3 = 0")
    db.execute("DELETE FROM items WHERE id > 14000")
    kill_after_checkpoints(["run", str(pipeline)], home, 10, CLI, jitter=0.05)
    rows = _dest(tmp_path)
    assert len(rows) == len({r[0] for r in rows})
    if mode == "replace":  # the swap happens at the end: the old copy is intact
        assert len(rows) == 15000 and rows[2][1] != "changed"
    done = run_cli(["run", str(pipeline)], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = db.execute("SELECT id, v, n FROM items ORDER BY id")
    if mode == "merge":  # a full refresh merges: rows deleted at the source stay
        assert _dest(tmp_path)[:14000] == expected
    else:
        assert _dest(tmp_path) == expected
