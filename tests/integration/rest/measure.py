"""Figures for the REST source (not a test): ``python -m tests.integration.rest.measure``.

1. page typing: rows per CPU-second of ``PageTyper`` (one json.dumps + Arrow JSON parse per
   page) against ``pa.Table.from_pylist`` per page, on 1,000-record pages;
2. ``rest_paged``: pages/s against the local server at 50 ms latency per page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow as pa

from aggregator.connectors.rest.records import PageTyper, loads
from tests.integration.rest.helpers import read, source


def typing_rates(pages: int = 50, size: int = 1000) -> dict[str, float]:
    records = [
        {
            "id": i,
            "name": f"name {i}",
            "score": i * 0.25,
            "at": "2024-01-01T10:00:00Z",
            "tags": ["a", "b"],
            "address": {"city": "x", "zip": str(i)},
        }
        for i in range(size)
    ]
    body = json.dumps({"data": records}).encode()
    typer = PageTyper("s", {})
    started = time.process_time()
    for n in range(pages):
        data, exact = loads(body)
        typer.page(data["data"], n, exact)
    ours = pages * size / (time.process_time() - started)
    started = time.process_time()
    for _ in range(pages):
        pa.Table.from_pylist(loads(body)[0]["data"])
    pylist = pages * size / (time.process_time() - started)
    started = time.process_time()
    for _ in range(pages):
        loads(body)
    parse_only = pages * size / (time.process_time() - started)
    return {
        "page_typer_rows_s": ours,
        "from_pylist_rows_s": pylist,
        "json_loads_rows_s": parse_only,
    }


def paged(concurrency: int, pages: int = 100, latency: float = 0.05) -> dict[str, float]:
    # the server runs in its own process so that it does not compete for our GIL
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.rest.server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        stream = {
            "name": "p",
            "path": "/paged",
            "records_path": "data",
            "params": {"pages": str(pages), "latency": str(latency)},
            "pagination": {"type": "page_number"},
        }
        src = source(url, [stream], concurrency=concurrency)
        started = time.perf_counter()
        rows = read(src, "p").table.num_rows
        seconds = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
    rate = pages / seconds
    return {
        "concurrency": concurrency,
        "pages_per_s": round(rate, 1),
        "rows": rows,
        "target_pages_per_s": 0.8 * concurrency / latency,
    }


if __name__ == "__main__":
    print(json.dumps({k: round(v) for k, v in typing_rates().items()}))
    for c in (1, 4, 8):
        print(json.dumps(paged(c)))
