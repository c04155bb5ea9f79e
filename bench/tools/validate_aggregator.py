"""Validate (``check``) or profile (``profile``) the exported pgbench_accounts Parquet data with
the aggregator's quality engine, batch by batch as a pipeline would.

The rules are the ones ``validate_pandera.py`` states with pandera.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

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


def batches(path: str) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").to_batches(batch_size=65_536)


def check(path: str) -> int:
    from aggregator.pipeline.spec import PipelineSpec
    from aggregator.transform.processor import QualityProcessor

    stream = {"name": "pgbench_accounts", "checks": CHECKS}
    spec = PipelineSpec.model_validate(
        {"name": "bench", "sources": [{"name": "f", "type": "files", "streams": [stream]}]}
    )
    processor = QualityProcessor(spec, spec.sources[0].streams[0])  # type: ignore[index]
    rows = 0
    for batch in batches(path):
        rows += batch.num_rows
        processor.process(batch)
    processor.finish()
    failed = sum(r.failed for r in processor.results)
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
