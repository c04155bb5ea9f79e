"""``rest_paged``: the rest source reads N pages (50 ms each) into DuckDB.

Starts ``rest_server.py`` in its own process (so it never competes for our GIL), runs one
pipeline ``rest -> duckdb`` with page-number pagination and the given concurrency, checks
every row arrived, and stops the server.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.observability.logging import configure_logging
from aggregator.pipeline.spec import PipelineSpec

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", type=int, required=True)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--out", required=True, help="DuckDB file")
    a = p.parse_args()
    configure_logging("warning")
    server = subprocess.Popen(
        [sys.executable, str(HERE / "rest_server.py"), "--pages", str(a.pages),
         "--latency", str(a.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        spec = PipelineSpec.model_validate(
            {
                "name": "bench_rest",
                "sources": [
                    {
                        "name": "api",
                        "type": "rest",
                        "config": {
                            "base_url": url,
                            "concurrency": a.concurrency,
                            "pagination": {"type": "page_number"},
                            "streams": [
                                {"name": "items", "path": "/items", "records_path": "data"}
                            ],
                        },
                        "streams": [{"name": "items", "write_mode": "append"}],
                    }
                ],
                "destination": {"type": "duckdb", "config": {"path": a.out}},
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            store = MetadataStore(f"sqlite:///{tmp}/metadata.db")
            record = LocalEngine(store).run(spec)
    finally:
        server.terminate()
        server.wait(10)
    if record.status != "succeeded":
        print(record.error, file=sys.stderr)
        return 1
    loaded = sum(s.rows_loaded for s in record.streams)
    if loaded != a.pages * 100:
        print(f"expected {a.pages * 100} rows, loaded {loaded}", file=sys.stderr)
        return 1
    print(f"rows={loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
