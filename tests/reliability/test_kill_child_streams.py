"""SIGKILL the real CLI while it loads orders with an ``unnest ... into`` child stream into
DuckDB; after re-runs the parent and child tables hold every row exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.reliability.killing import kill_after_checkpoints, run_cli

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
FILES, ROWS_PER_FILE = 3, 20_000
TOTAL = FILES * ROWS_PER_FILE
CHILDREN = sum(i % 3 for i in range(1, TOTAL + 1))  # order i has i % 3 items


def _data(tmp: Path) -> None:
    for f in range(FILES):
        lines = []
        for i in range(f * ROWS_PER_FILE + 1, (f + 1) * ROWS_PER_FILE + 1):
            items = [{"sku": f"s{i}-{k}", "qty": k + 1} for k in range(i % 3)]
            lines.append(json.dumps({"order_id": i, "items": items}))
        (tmp / f"part{f}.jsonl").write_text("\n".join(lines) + "\n")


def _pipeline(tmp: Path, mode: str) -> Path:
    spec = {
        "name": f"kill_children_{mode}",
        "sources": [
            {
                "name": "files",
                "type": "files",
                "config": {
                    "streams": [
                        {
                            "name": "orders",
                            "path": str(tmp / "part*.jsonl"),
                            "incremental_by": "modified_at",
                            "checkpoint_rows": 2_000,
                        }
                    ]
                },
                "streams": [
                    {
                        "name": "orders",
                        "write_mode": mode,
                        "sync_mode": "incremental",
                        "primary_key": ["order_id"],
                        "transforms": [{"step": "unnest", "column": "items", "into": "items"}],
                    }
                ],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp / "wh.duckdb")}},
        "engine": {"batch_size": 500},
    }
    path = tmp / "pipeline.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _summary(tmp: Path) -> tuple[int, int, int, int, int]:
    with duckdb.connect(str(tmp / "wh.duckdb"), read_only=True) as con:
        row = con.execute(
            "select (select count(*) from orders), (select count(distinct order_id) from orders),"
            " count(*), count(distinct (order_id, _index)),"
            " count(*) filter (where sku <> 's' || order_id || '-' || _index"
            " or qty <> _index + 1 or order_id not in (select order_id from orders))"
            " from items"
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_kill_mid_load_then_resume_keeps_children_exact(tmp_path: Path, mode: str) -> None:
    _data(tmp_path)
    pipeline = _pipeline(tmp_path, mode)
    home = tmp_path / "home"
    for checkpoints in (3, 9):
        kill_after_checkpoints(["run", str(pipeline)], home, checkpoints, jitter=0.05)
        orders, distinct_orders, items, distinct_items, wrong = _summary(tmp_path)
        assert orders == distinct_orders and items == distinct_items and wrong == 0
    final = run_cli(["run", str(pipeline)], home)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _summary(tmp_path) == (TOTAL, TOTAL, CHILDREN, CHILDREN, 0)
