"""PostgreSQL pgbench_accounts -> DuckDB with a chain of the 10 typical transform steps.

``--no-steps`` runs the same pipeline without them (the baseline of the overhead figure).
The lookup reads ``--ref``, a CSV of (bid, branch_name) written by ``--make-ref``.
``--metadata FILE`` keeps the run history between runs, as ``aggregator_tool.py`` does for
``pg_accounts_to_duckdb`` (the baseline of the overhead figure), so both pay the same
start-up: the file is migrated once by ``--make-ref`` in the untimed reset.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec


def steps(ref: str) -> list[dict[str, Any]]:
    """Rename, normalize names, cast, dedupe, derive, filter, lookup, mask, trim, parse date."""
    opened = "CAST(DATE '2010-01-01' + CAST(aid % 5000 AS INTEGER) AS VARCHAR)"
    return [
        {"step": "rename", "columns": {"abalance": "Account Balance"}},
        {"step": "normalize_names"},
        {"step": "cast", "columns": {"account_balance": "int64"}},
        {"step": "deduplicate", "key": ["aid"]},
        {"step": "derive", "column": "opened", "expr": opened},
        {"step": "filter", "where": "aid % 100 <> 0", "on_drop": "drop"},
        {"step": "lookup", "file": ref, "on": {"bid": "bid"}, "columns": ["branch_name"]},
        {"step": "protect", "columns": {"filler": "mask"}, "keep_last": 4},
        {"step": "trim", "columns": ["branch_name"]},
        {"step": "parse_date", "columns": ["opened"], "format": "%Y-%m-%d"},
    ]


def make_ref(url: str, path: str) -> None:
    """Branch names (padded, for the trim step) of every pgbench branch."""
    import psycopg

    with psycopg.connect(url) as con, open(path, "w") as out:
        out.write("bid,branch_name\n")
        for (bid,) in con.execute("SELECT bid FROM pgbench_branches ORDER BY bid"):
            out.write(f'{bid},"  Branch {bid}  "\n')


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True, help=".duckdb file")
    p.add_argument("--ref", required=True, help="branches CSV")
    p.add_argument("--make-ref", action="store_true", help="only write the branches CSV")
    p.add_argument("--no-steps", action="store_true")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--metadata", help="SQLite metadata file kept between runs")
    a = p.parse_args()
    if a.make_ref:
        make_ref(a.url, a.ref)
        if a.metadata:
            MetadataStore(f"sqlite:///{a.metadata}")  # create and migrate it
        return 0
    stream: dict[str, Any] = {"name": "pgbench_accounts", "write_mode": "append"}
    if not a.no_steps:
        stream["transforms"] = steps(a.ref)
    spec = PipelineSpec.model_validate(
        {
            "name": "bench",
            "sources": [
                {
                    "name": "pg",
                    "type": "postgres",
                    "config": {
                        "url": a.url,
                        "tables": ["pgbench_accounts"],
                        "parallel": a.parallel,
                    },
                    "streams": [stream],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": a.out}},
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
    loaded = sum(s.rows_loaded for s in record.streams)
    print(f"rows={loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
