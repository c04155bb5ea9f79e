"""``rest_paged``: the rest source reads N pages (50 ms each) into DuckDB.

Starts ``rest_server.py`` in its own process (so it never competes for our GIL), runs one
pipeline ``rest -> duckdb`` with page-number pagination and the given concurrency, checks
every row arrived, and stops the server. With ``--report``, writes the pipeline run's rate
(``pages_per_s``: pages / seconds of ``LocalEngine.run``, without interpreter and server
start-up), ``run_s``, ``startup_s`` and this process's CPU per page (``cpu_ms_per_page``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
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
    p.add_argument("--report", help="JSON file for the run's measurements")
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
            engine = LocalEngine(store)
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            record = engine.run(spec)
            run_s = time.perf_counter() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
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
    if a.report:
        report = {
            "pages_per_s": round(a.pages / run_s, 1),
            "run_s": round(run_s, 3),
            "startup_s": round(_since_process_start() - run_s, 3),
            "cpu_ms_per_page": round(
                1000 * (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / a.pages, 3
            ),
        }
        Path(a.report).write_text(json.dumps(report))
    return 0


def _since_process_start() -> float:
    """Seconds since this process started (``/proc``; the interpreter start-up included)."""
    import os

    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
