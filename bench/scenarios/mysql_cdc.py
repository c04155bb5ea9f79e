"""MariaDB binlog CDC -> DuckDB: lag from source commit to destination commit at 5k changes/s.

The MariaDB counterpart of ``pg_cdc_to_duckdb`` (same change mix and rate):
``aggregator run --follow`` runs while bench/tools/mysql_cdc_lag.py writes a steady stream
of mixed inserts, updates and deletes; the tool writes ``lag_p50_s`` / ``lag_p99_s`` /
``lag_max_s`` and the achieved ``changes_per_s`` to ``work/mysql_cdc_lag.json`` and fails
when the destination differs from the source afterwards. No peer runs here (Debezium needs
Kafka Connect and a JVM). ``seconds`` covers set-up, the writing and the clean stop.
"""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

RATE = 5000


def scenarios(ctx: Context) -> list[Scenario]:
    """One scenario, one tool: the lag figures come from the tool's report."""
    if "AGGREGATOR_TEST_MYSQL_URL" not in ctx.services:
        return []
    seconds = 10 if ctx.quick else 30
    changes = RATE * seconds
    report = ctx.work / "mysql_cdc_lag.json"
    cmd = [
        ctx.project_python,
        str(BENCH_DIR / "tools" / "mysql_cdc_lag.py"),
        "--url",
        ctx.services["AGGREGATOR_TEST_MYSQL_URL"],
        "--work",
        str(ctx.work / "mysql_cdc"),
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
    return [Scenario("mysql_cdc_to_duckdb", changes, {"aggregator": tool})]
