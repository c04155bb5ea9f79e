"""SIGKILL the real CLI loading CSV into DuckDB; a re-run ends with exactly the source rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from tests.reliability.killing import kill_after_checkpoints, run_cli

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
FILES, ROWS_PER_FILE = 3, 40_000
TOTAL = FILES * ROWS_PER_FILE


def _data(tmp: Path) -> None:
    for f in range(FILES):
        start = f * ROWS_PER_FILE + 1
        ids = pa.array(range(start, start + ROWS_PER_FILE), pa.int64())
        table = pa.table(
            {"id": ids, "amount": pa.array([f"{i % 1000}.25" for i in ids.to_pylist()])}
        )
        pacsv.write_csv(table, tmp / f"part{f}.csv")


def _pipeline(tmp: Path, mode: str) -> Path:
    stream: dict[str, object] = {"name": "rows", "write_mode": mode, "primary_key": ["id"]}
    if mode != "replace":
        stream["sync_mode"] = "incremental"
    spec = {
        "name": f"kill_{mode}",
        "sources": [
            {
                "name": "files",
                "type": "files",
                "config": {
                    "streams": [
                        {
                            "name": "rows",
                            "path": str(tmp / "part*.csv"),
                            "incremental_by": "modified_at",
                            "checkpoint_rows": 2_000,
                        }
                    ]
                },
                "streams": [stream],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp / "wh.duckdb")}},
        "engine": {"batch_size": 500},
    }
    path = tmp / "pipeline.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _summary(tmp: Path) -> tuple[int, int, int]:
    with duckdb.connect(str(tmp / "wh.duckdb"), read_only=True) as con:
        row = con.execute(
            "select count(*), count(distinct id), coalesce(max(id), 0) from rows"
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_kill_mid_file_then_resume(tmp_path: Path, mode: str) -> None:
    _data(tmp_path)
    pipeline = _pipeline(tmp_path, mode)
    home = tmp_path / "home"
    if mode == "replace":
        first = run_cli(["run", str(pipeline)], home)
        assert first.returncode == 0, first.stderr[-2000:]
    for checkpoints in (3, 10, 8):
        kill_after_checkpoints(["run", str(pipeline)], home, checkpoints, jitter=0.05)
        count, distinct, _ = _summary(tmp_path)
        assert count == distinct
        if mode == "replace":
            assert count == TOTAL  # the old table, whole, until the swap
    done = run_cli(["run", str(pipeline), "--json"], home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _summary(tmp_path) == (TOTAL, TOTAL, TOTAL)
