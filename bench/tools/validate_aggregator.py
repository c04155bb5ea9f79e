"""Validate (``check``) or profile (``profile``) the exported pgbench_accounts Parquet data with
the aggregator's quality engine, batch by batch as a pipeline would (``BATCH_ROWS`` rows).

The rules are the ones ``validate_pandera.py`` states with pandera. Timed: Python start-up,
imports, reading the Parquet files and the checks (``aggregator.quality.validate``, the
engine's row checks without a pipeline).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

BATCH_ROWS = 65_536
CHECKS: list[dict[str, Any]] = [
    {"check": "type", "column": "aid", "type": "int32"},
    {"check": "type", "column": "bid", "type": "int32"},
    {"check": "type", "column": "abalance", "type": "int32"},
    {"check": "not_null", "columns": ["aid", "bid", "abalance"]},
    {"check": "unique", "columns": ["aid"]},
    {"check": "range", "column": "aid", "min": 1},
    {"check": "range", "column": "bid", "min": 1, "max": 100000},
    {"check": "range", "column": "abalance", "min": -100000000, "max": 100000000},
    {"check": "length", "column": "filler", "max": 84},
    {"check": "regex", "column": "filler", "pattern": "^[ a-z0-9]*$"},
]


def _read(path: str) -> Any:
    """The Parquet files' rows as record batches, streamed file by file."""
    from pathlib import Path

    import pyarrow.parquet as pq

    root = Path(path)
    for file in sorted(root.rglob("*.parquet")):
        if any(part[0] in "._" for part in file.relative_to(root).parts):
            continue  # bookkeeping (as pyarrow.dataset and pandas skip it)
        yield from pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS)


def batches(path: str) -> Any:
    """Batches read by a producer thread into a bounded queue, as the engine's stream task
    reads a source while it processes the previous batches."""
    import queue
    import threading

    out: queue.Queue[Any] = queue.Queue(maxsize=4)
    done = object()

    def produce() -> None:
        try:
            for batch in _read(path):
                out.put(batch)
        except BaseException as exc:  # re-raised by the consumer
            out.put(exc)
        out.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := out.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def check(path: str) -> int:
    from aggregator.quality.validate import Validator

    validator = Validator(CHECKS, "pgbench_accounts")
    rows = 0
    for batch in batches(path):
        rows += batch.num_rows
        validator.validate(batch)
    failed = sum(r.failed for r in validator.finish())
    print(f"rows={rows} failed={failed}")
    return 0


def profile(path: str) -> int:
    import duckdb
    import pyarrow as pa

    from aggregator.quality.profile import Profiler

    with duckdb.connect() as con:
        profiler = Profiler(con)
        for batch in batches(path):
            profiler.update(pa.Table.from_batches([batch]))
        columns = profiler.to_json()
    print(f"rows={profiler.rows} columns={len(columns)}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["check", "profile"])
    p.add_argument("--data", required=True, help="directory of Parquet files")
    a = p.parse_args()
    return check(a.data) if a.mode == "check" else profile(a.data)


if __name__ == "__main__":
    sys.exit(main())
