"""SIGKILL a running pipeline mid-load; the re-run must end with exactly the source's rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from tests.reliability.killing import kill_after_checkpoints, run_cli
from tests.support import pipeline_dict

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CLI = Path(__file__).with_name("cli_with_test_source.py")
ROWS = 6000


def _write_pipeline(tmp: Path, mode: str, version: int) -> Path:
    spec = pipeline_dict(str(tmp), mode, rows=ROWS, batch=50, version=version, delay=0.02)
    if mode == "replace":
        stream = spec["sources"][0]["streams"][0]
        stream["sync_mode"] = "full_refresh"
    path = tmp / f"pipeline-{mode}-{version}.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _table(tmp: Path) -> list[tuple[int, int, int, int]]:
    with duckdb.connect(str(tmp / "wh.duckdb"), read_only=True) as con:
        return con.execute(
            "select count(*), count(distinct id), min(id), max(id) from numbers"
        ).fetchall()


def _versions(tmp: Path) -> list[tuple[int]]:
    with duckdb.connect(str(tmp / "wh.duckdb"), read_only=True) as con:
        return con.execute("select distinct version from numbers order by 1").fetchall()


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_incremental_modes_survive_repeated_kills(tmp_path: Path, mode: str) -> None:
    pipeline = _write_pipeline(tmp_path, mode, 1)
    home = tmp_path / "home"
    for checkpoints in (3, 7, 12):
        kill_after_checkpoints(["run", str(pipeline)], home, checkpoints, CLI)
        count, distinct, _, _ = _table(tmp_path)[0]
        assert count == distinct  # no duplicate after a kill
        assert 0 < count < ROWS
    done = run_cli(["run", str(pipeline), "--json"], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _table(tmp_path) == [(ROWS, ROWS, 1, ROWS)]


def test_replace_is_atomic_under_kill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_cli(["run", str(_write_pipeline(tmp_path, "replace", 1))], home, CLI)
    assert first.returncode == 0, first.stderr[-2000:]
    second = _write_pipeline(tmp_path, "replace", 2)
    for checkpoints in (5, 40):
        kill_after_checkpoints(["run", str(second)], home, checkpoints, CLI)
        assert _table(tmp_path) == [(ROWS, ROWS, 1, ROWS)]
        assert _versions(tmp_path) == [(1,)]  # the old table, whole
    done = run_cli(["run", str(second)], home, CLI)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _table(tmp_path) == [(ROWS, ROWS, 1, ROWS)]
    assert _versions(tmp_path) == [(2,)]
