"""Runs one aggregator pipeline: PostgreSQL table -> parquet | duckdb | postgres.

``--metadata FILE`` keeps the run history in a SQLite file that outlives the run, as
``aggregator run`` does with ``.aggregator/metadata.db``; the scenario creates (migrates) it
in an untimed prepare step (``--init-metadata FILE``), so the timed command pays what a
repeated run pays, not the one-time migration. Without it, a temporary store is used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--init-metadata", help="create/migrate this metadata file and exit")
    p.add_argument("--url")
    p.add_argument("--table")
    p.add_argument("--dest", choices=["parquet", "duckdb", "postgres"])
    p.add_argument("--out", help="directory, .duckdb file or postgresql:// URL")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--metadata", help="SQLite metadata file kept between runs")
    a = p.parse_args()
    if a.init_metadata:
        MetadataStore(f"sqlite:///{a.init_metadata}")
        return 0
    if not (a.url and a.table and a.dest and a.out):
        p.error("--url, --table, --dest and --out are required")
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
    if a.metadata:
        record = LocalEngine(MetadataStore(f"sqlite:///{a.metadata}")).run(spec)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            record = LocalEngine(MetadataStore(f"sqlite:///{tmp}/metadata.db")).run(spec)
    if record.status != "succeeded":
        print(record.error, file=sys.stderr)
        return 1
    print(f"rows={sum(s.rows_loaded for s in record.streams)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
