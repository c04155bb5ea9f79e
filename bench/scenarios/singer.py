"""``singer_jsonl_to_duckdb``: a Singer tap into DuckDB, our Singer adapter against Meltano.

Both run the same ``tap-jsonl`` release from PyPI on the same generated JSON Lines file
(12 columns). ``aggregator``: our Singer source parses the tap's messages into Arrow and our
DuckDB destination loads them. ``meltano``: ``meltano run tap-jsonl target-duckdb``.
Set-up (Meltano's virtualenv and plugins, our plugin, the data) is an untimed, idempotent
prepare step (``tools/singer_setup.py``).

Targets (issue #6): ours at least 1.5x faster than Meltano; our side of the pipe under a
quarter of the tap's own CPU time. The CPU seconds each run measured (medians) go into the
result's fields (``our_cpu_s``, ``tap_cpu_s``, ``our_share_of_tap_cpu``; ``meltano_cpu_s``).
"""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

TOOLS = BENCH_DIR / "tools"


def scenarios(ctx: Context) -> list[Scenario]:
    rows = 50_000 if ctx.quick else 500_000
    data = BENCH_DIR / "work" / f"singer_wide_{rows}.jsonl"
    setup = [
        ctx.project_python,
        str(TOOLS / "singer_setup.py"),
        "--rows",
        str(rows),
        "--project-python",
        ctx.project_python,
    ]
    ours_db, theirs_db = ctx.work / "singer.duckdb", ctx.work / "meltano.duckdb"
    ours_cpu, theirs_cpu = ctx.work / "singer_cpu.json", ctx.work / "meltano_cpu.json"
    fixed = {"tap": "tap-jsonl 0.3.1", "columns": 12}
    aggregator = ToolRun(
        [
            ctx.project_python,
            str(TOOLS / "singer_tool.py"),
            "--data",
            str(data),
            "--rows",
            str(rows),
            "--out",
            str(ours_db),
            "--cpu-out",
            str(ours_cpu),
        ],
        prepare=[setup, ["rm", "-f", str(ours_db), f"{ours_db}.wal", str(ours_cpu)]],
        extra=fixed,
        report=ours_cpu,
    )
    meltano = ToolRun(
        [
            ctx.project_python,
            str(TOOLS / "meltano_tool.py"),
            "--rows",
            str(rows),
            "--out",
            str(theirs_db),
            "--cpu-out",
            str(theirs_cpu),
        ],
        prepare=[setup, ["rm", "-f", str(theirs_db), f"{theirs_db}.wal", str(theirs_cpu)]],
        extra={**fixed, "target": "target-duckdb 0.8.0"},
        report=theirs_cpu,
        note="meltano run tap-jsonl target-duckdb",
    )
    return [
        Scenario("singer_jsonl_to_duckdb", rows, {"aggregator": aggregator, "meltano": meltano})
    ]
