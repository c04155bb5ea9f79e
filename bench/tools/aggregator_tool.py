"""Runs one aggregator pipeline: PostgreSQL table -> parquet | duckdb | postgres."""

from __future__ import annotations

import argparse
import sys
import tempfile

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--dest", choices=["parquet", "duckdb", "postgres"], required=True)
    p.add_argument("--out", required=True, help="directory, .duckdb file or postgresql:// URL")
    p.add_argument("--parallel", type=int, default=2)
    a = p.parse_args()
    if a.dest == "parquet":
        destination = {"type": "files", "config": {"path": a.out, "format": "parquet"}}
    elif a.dest == "duckdb":
        destination = {"type": "duckdb", "config": {"path": a.out}}
    else:
        destination = {"type": "postgres", "config": {"url": a.out, "schema": "aggregator"}}
    spec = PipelineSpec.model_validate(
        {
            "name": "bench",
            "sources": [
                {
                    "name": "pg",
                    "type": "postgres",
                    "config": {"url": a.url, "tables": [a.table], "parallel": a.parallel},
                    "streams": [{"name": a.table, "write_mode": "append"}],
                }
            ],
            "destination": destination,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = MetadataStore(f"sqlite:///{tmp}/metadata.db")
        record = LocalEngine(store).run(spec)
    if record.status != "succeeded":
        print(record.error, file=sys.stderr)
        return 1
    print(f"rows={sum(s.rows_loaded for s in record.streams)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
