"""Runs one aggregator pipeline: MariaDB table -> DuckDB (``--source mysql`` or ``sql``)."""

from __future__ import annotations

import argparse
import sys
import tempfile

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="mysql://user:pw@host:port/database")
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True, help=".duckdb file")
    p.add_argument("--source", choices=["mysql", "sql"], default="mysql")
    a = p.parse_args()
    if a.source == "mysql":
        config = {"url": a.url, "tables": [a.table]}
    else:  # the generic SQLAlchemy source through pymysql
        config = {"url": a.url.replace("mysql://", "mysql+pymysql://", 1), "tables": [a.table]}
    spec = PipelineSpec.model_validate(
        {
            "name": "bench_mysql",
            "sources": [
                {
                    "name": "my",
                    "type": a.source,
                    "config": config,
                    "streams": [{"name": a.table, "write_mode": "append"}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": a.out}},
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
