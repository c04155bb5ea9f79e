"""``singer_jsonl_to_duckdb``, tool ``aggregator``: our Singer adapter runs tap-jsonl and our
DuckDB destination loads its records.

Writes ``{"our_cpu_s", "tap_cpu_s"}`` to ``--cpu-out``: the CPU time of this process while
the pipeline runs (parsing the tap's messages, typing, writing DuckDB: our side of the
pipe, every thread) and of the tap's processes (``RUSAGE_CHILDREN``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", required=True, help="DuckDB file")
    p.add_argument("--cpu-out", required=True)
    a = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from singer_setup import PLUGINS

    os.environ["AGGREGATOR_PLUGINS_DIR"] = str(PLUGINS)
    from aggregator.engines.local import LocalEngine
    from aggregator.metadata.store import MetadataStore
    from aggregator.observability.logging import configure_logging
    from aggregator.pipeline.spec import PipelineSpec

    configure_logging("warning")
    spec = PipelineSpec.model_validate(
        {
            "name": "bench_singer",
            "sources": [
                {
                    "name": "singer",
                    "type": "singer",
                    "config": {
                        "tap": "tap-jsonl",
                        "config": {"path": a.data, "stream_name": "wide"},
                    },
                    "streams": [{"name": "wide", "write_mode": "append"}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": a.out}},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = MetadataStore(f"sqlite:///{tmp}/metadata.db")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = time.process_time()
        record = LocalEngine(store).run(spec)
        ours = time.process_time() - ours
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tap = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if record.status != "succeeded":
        print(record.error, file=sys.stderr)
        return 1
    loaded = sum(s.rows_loaded for s in record.streams)
    if loaded != a.rows:
        print(f"expected {a.rows} rows, loaded {loaded}", file=sys.stderr)
        return 1
    Path(a.cpu_out).write_text(
        json.dumps(
            {
                "our_cpu_s": round(ours, 2),
                "tap_cpu_s": round(tap, 2),
                "our_share_of_tap_cpu": round(ours / tap, 3) if tap else None,
                "rows_loaded": loaded,
            }
        )
        + "\n"
    )
    print(f"rows={loaded} our_cpu_s={ours:.2f} tap_cpu_s={tap:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
