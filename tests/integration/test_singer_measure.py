"""Figures for the Singer source (no tests here): rows/s and CPU, ours against the tap's.

    AGGREGATOR_PLUGINS_DIR=~/.cache/aggregator-test-plugins \\
        .venv/bin/python -m tests.integration.test_singer_measure [ROWS]

Runs tap-jsonl on a generated file of ROWS wide-ish records. The parent's CPU time
(``time.process_time``, all our threads) is our side of the pipe; the tap's is the
children's rusage.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from aggregator.connectors.singer import SingerSource
from aggregator.testing import read_stream


def measure(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.jsonl"
        with path.open("w") as out:
            for i in range(rows):
                out.write(
                    json.dumps(
                        {
                            "id": i,
                            "name": f"customer {i}",
                            "amount": i * 0.01,
                            "qty": i % 17,
                            "city": "Lyon",
                            "at": "2024-01-01T10:00:00Z",
                            "active": i % 2 == 0,
                            "note": "x" * 20,
                        }
                    )
                    + "\n"
                )
        src = SingerSource.from_config(
            {"tap": "tap-jsonl", "config": {"path": str(path), "stream_name": "wide"}}
        )
        assert isinstance(src, SingerSource)
        src.singer_catalog()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, wall = time.process_time(), time.perf_counter()
        result = read_stream(src, "wide")
        wall = time.perf_counter() - wall
        ours = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        tap = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert result.rows == rows, result.rows
    return {
        "rows": rows,
        "seconds": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "our_cpu_s": round(ours, 2),
        "tap_cpu_s": round(tap, 2),
        "our_share_of_tap_cpu": round(ours / tap, 3),
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)))
