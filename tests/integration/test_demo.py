"""`make demo` end to end: the README's first command must keep working and keep showing
what it promises (a transform, a masked column, quarantined rows with file:line, a profile,
incremental day 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "demo.py"

pytestmark = pytest.mark.slow


def _run_demo(demo_dir: Path) -> str:
    env = {**os.environ, "DEMO_DIR": str(demo_dir), "COLUMNS": "220", "NO_COLOR": "1"}
    env.pop("AGGREGATOR_HOME", None)
    done = subprocess.run(
        [sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _counts(out: str, stream: str) -> tuple[str, ...]:
    """(status, read, loaded, quarantined) from the run table row of ``stream``."""
    row = re.search(rf"│ {stream}\s+│ (\w+)\s+│\s+([\d,]+) │\s+([\d,]+) │\s+([\d,]+) │", out)
    assert row, f"no row for {stream} in:\n{out}"
    return row.groups()


def test_demo_runs_twice_with_incremental_day_two(tmp_path: Path) -> None:
    first = _run_demo(tmp_path)
    assert _counts(first, "orders") == ("succeeded", "200,010", "200,008", "2")
    assert _counts(first, "events") == ("succeeded", "8", "7", "1")
    assert _counts(first, "customers") == ("succeeded", "7", "7", "0")
    assert _counts(first, "products") == ("succeeded", "12", "12", "0")
    # quarantined rows named by file:line, and a row rejected by a transform step
    assert "orders_day1.csv:11: expected 7 fields, found 6" in first
    assert "events_day1.jsonl:6: invalid JSON" in first
    assert "transforms[0] (parse_number): column 'amount': cannot parse '12.3.4'" in first
    # the profile of one stream, with a hashed and a masked column
    assert "customers: profile" in first and "phone masked" in first
    assert "│ 1           │ Ada Lovelace    │ ************0101 │" in first

    second = _run_demo(tmp_path)
    assert "demo run 2" in second
    assert _counts(second, "orders") == ("succeeded", "5", "5", "0")
    assert _counts(second, "events") == ("succeeded", "3", "3", "0")
    assert _counts(second, "customers") == ("succeeded", "3", "3", "0")
    assert _counts(second, "products") == ("succeeded", "5", "5", "0")
