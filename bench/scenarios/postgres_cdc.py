"""PostgreSQL CDC -> DuckDB: lag from source commit to destination commit at 5k changes/s.

``aggregator run --follow`` runs while bench/tools/cdc_lag.py writes a steady stream of
mixed inserts, updates and deletes; the tool writes ``lag_p50_s`` / ``lag_p99_s`` /
``lag_max_s`` and the achieved ``changes_per_s`` to ``work/cdc_lag.json`` and fails when
the destination differs from the source afterwards. No peer runs here (Debezium needs
Kafka Connect and a JVM). ``seconds`` covers set-up, the writing and the clean stop.
"""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

RATE = 5000


def scenarios(ctx: Context) -> list[Scenario]:
    """One scenario, one tool: the lag figures come from the tool's report."""
    seconds = 10 if ctx.quick else 30
    changes = RATE * seconds
    report = ctx.work / "cdc_lag.json"
    cmd = [
        ctx.project_python,
        str(BENCH_DIR / "tools" / "cdc_lag.py"),
        "--url",
        ctx.pg_url,
        "--work",
        str(ctx.work / "cdc"),
        "--report",
        str(report),
        "--rate",
        str(RATE),
        "--seconds",
        str(seconds),
    ]
    tool = ToolRun(
        cmd,
        rows=changes,
        note=f"rows = changes at {RATE}/s; lag figures in {report.name}",
        extra={"target_changes_per_s": RATE, "target_lag_s": 2.0},
        report=report,
    )
    return [Scenario("pg_cdc_to_duckdb", changes, {"aggregator": tool})]
