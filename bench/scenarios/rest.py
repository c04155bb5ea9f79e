"""``rest_paged``: the declarative REST source against a local API with 50 ms per page.

Target (issue #6): at least 80% of concurrency x 20 pages/s, i.e. 128 pages/s at
concurrency 8. The timed command includes starting Python and the API server (about 2-3 s),
so the page count is large enough for that to matter little.
"""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

CONCURRENCY = 8
LATENCY = 0.05
PAGE_ROWS = 100


def scenarios(ctx: Context) -> list[Scenario]:
    pages = 1000 if ctx.quick else 4000
    out = ctx.work / "rest.duckdb"
    tool = ToolRun(
        [
            ctx.project_python,
            str(BENCH_DIR / "tools" / "rest_paged_tool.py"),
            "--pages",
            str(pages),
            "--latency",
            str(LATENCY),
            "--concurrency",
            str(CONCURRENCY),
            "--out",
            str(out),
        ],
        prepare=[["rm", "-f", str(out), f"{out}.wal"]],
        units={"pages": pages},
        extra={
            "concurrency": CONCURRENCY,
            "latency_ms": int(LATENCY * 1000),
            "target_pages_per_s": 0.8 * CONCURRENCY / LATENCY,
        },
        note=f"{pages} pages x {PAGE_ROWS} rows, {int(LATENCY * 1000)} ms each",
    )
    return [Scenario("rest_paged", pages * PAGE_ROWS, {"aggregator": tool})]
