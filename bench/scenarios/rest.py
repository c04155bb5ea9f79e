"""``rest_paged``: the declarative REST source against a local API with 50 ms per page.

Target (issue #6): at least 80% of concurrency x 20 pages/s, i.e. 128 pages/s at
concurrency 8. ``pages_per_s`` is the pipeline run's rate, reported by the tool: pages over
the seconds of ``LocalEngine.run`` (the timed command also starts Python, imports the
package and starts the API server, 2-3 s that say nothing about paging; ``startup_s`` gives
them). ``cpu_ms_per_page`` is the client's CPU per page (parse, type, load), which bounds
the rate on a small machine.
"""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

CONCURRENCY = 8
LATENCY = 0.05
PAGE_ROWS = 100


def scenarios(ctx: Context) -> list[Scenario]:
    pages = 1000 if ctx.quick else 4000
    out = ctx.work / "rest.duckdb"
    report = ctx.work / "rest_report.json"
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
            "--report",
            str(report),
        ],
        prepare=[["rm", "-f", str(out), f"{out}.wal"]],
        report=report,
        extra={
            "concurrency": CONCURRENCY,
            "latency_ms": int(LATENCY * 1000),
            "target_pages_per_s": 0.8 * CONCURRENCY / LATENCY,
        },
        note=(
            f"{pages} pages x {PAGE_ROWS} rows, {int(LATENCY * 1000)} ms each; pages_per_s over "
            "the pipeline run (start-up in startup_s)"
        ),
    )
    return [Scenario("rest_paged", pages * PAGE_ROWS, {"aggregator": tool})]
