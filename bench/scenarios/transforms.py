"""Transform and data-quality scenarios (issue #4).

- ``pg_accounts_transforms_to_duckdb``: the ``pg_accounts_to_duckdb`` sync with a chain of the
  10 typical steps (target: at most 30% slower than that sync without steps);
- ``validate_accounts``: the same 10 rules over the same 5M rows, aggregator vs pandera
  (target: at least 3x faster);
- ``profile_accounts``: a profile of 5M rows x 4 columns (target: under 5 s).

Validation and profiling read a Parquet export of pgbench_accounts, made once per data size
by the (untimed) prepare step; both tools read it in their timed command.
"""

from __future__ import annotations

from typing import Any

from common import BENCH_DIR, Context, Scenario, ToolRun

TOOLS = BENCH_DIR / "tools"


def _export(ctx: Context) -> tuple[str, list[list[str]]]:
    """The Parquet export of pgbench_accounts and the prepare step that makes it once."""
    rows = ctx.rows["pgbench_accounts"]
    data = ctx.work / f"accounts_{rows}"
    export = " ".join(
        [
            ctx.project_python,
            str(TOOLS / "aggregator_tool.py"),
            "--table pgbench_accounts --dest parquet",
            f"--url '{ctx.pg_url}' --out {data}.tmp",
        ]
    )
    script = (
        f"test -d {data} || (rm -rf {data}.tmp && mkdir -p {data}.tmp && {export} "
        f"&& mv {data}.tmp {data})"
    )
    return str(data), [["bash", "-c", script]]


def scenarios(ctx: Context) -> list[Scenario]:
    """Transform chain, validation against pandera, profiling."""
    rows = ctx.rows["pgbench_accounts"]
    out, ref = ctx.work / "transforms.duckdb", ctx.work / "branches.csv"
    metadata = ctx.work / "transforms-metadata.db"  # kept between runs, as for the baseline
    reset = [
        ["rm", "-f", str(out), f"{out}.wal", str(metadata)],
        [
            ctx.project_python,
            str(TOOLS / "transform_tool.py"),
            "--make-ref",
            "--url",
            ctx.pg_url,
            "--out",
            str(out),
            "--ref",
            str(ref),
            "--metadata",
            str(metadata),
        ],
    ]
    sync = [
        ctx.project_python,
        str(TOOLS / "transform_tool.py"),
        "--url",
        ctx.pg_url,
        "--out",
        str(out),
        "--ref",
        str(ref),
        "--metadata",
        str(metadata),
    ]
    data, export = _export(ctx)
    steps = ToolRun(
        sync,
        reset,
        note="10 steps: rename, normalize_names, cast, deduplicate, derive, filter (drops 1%), "
        "lookup, mask, trim, parse_date",
    )
    return [
        Scenario("pg_accounts_transforms_to_duckdb", rows, {"aggregator": steps}),
        Scenario(
            "validate_accounts",
            rows,
            {
                "aggregator": ToolRun(
                    [
                        ctx.project_python,
                        str(TOOLS / "validate_aggregator.py"),
                        "check",
                        "--data",
                        data,
                    ],
                    export,
                    note="10 rules (type x3, not_null, unique, range x3, length, regex) with "
                    "aggregator.quality.validate over 65,536-row Arrow batches (read by a "
                    "producer thread, as the engine reads a source); timed: Python "
                    "start-up, imports, Parquet read, checks",
                ),
                "pandera": ToolRun(
                    [ctx.peers_python, str(TOOLS / "validate_pandera.py"), "--data", data],
                    export,
                    note="the same 10 rules as one pandera DataFrameSchema (pandas backend, "
                    "lazy=True) over the whole frame; timed: Python start-up, imports, "
                    "pd.read_parquet of the same files, validation",
                ),
            },
        ),
        Scenario(
            "profile_accounts",
            rows,
            {
                "aggregator": ToolRun(
                    [
                        ctx.project_python,
                        str(TOOLS / "validate_aggregator.py"),
                        "profile",
                        "--data",
                        data,
                    ],
                    export,
                    note="4 columns: count, nulls, distinct (exact to 100k, then HyperLogLog), "
                    "min/max, mean/stddev, top 10, histogram; DuckDB aggregates per 1M-row chunk; "
                    "timed: start-up, imports, Parquet read, profile",
                    units={"cells": rows * 4},
                )
            },
        ),
    ]


def annotate(results: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Notes computed from a run's results: the steps' overhead over the plain sync and
    aggregator's validation speed-up over pandera (both measured in the same run)."""
    seconds = {(r["scenario"], r["tool"]): r["seconds"] for r in results}
    notes: dict[tuple[str, str], str] = {}
    plain = seconds.get(("pg_accounts_to_duckdb", "aggregator"))
    chain = seconds.get(("pg_accounts_transforms_to_duckdb", "aggregator"))
    if plain and chain:
        overhead = chain / plain - 1
        notes[("pg_accounts_transforms_to_duckdb", "aggregator")] = (
            f"overhead_vs_no_steps={overhead:+.0%} (target <= +30%)"
        )
    ours, peer = (
        seconds.get(("validate_accounts", "aggregator")),
        seconds.get(("validate_accounts", "pandera")),
    )
    if ours and peer:
        notes[("validate_accounts", "aggregator")] = f"{peer / ours:.1f}x pandera (target >= 3x)"
    profiled = seconds.get(("profile_accounts", "aggregator"))
    if profiled:
        notes[("profile_accounts", "aggregator")] = f"{profiled:.2f} s (target < 5 s)"
    return notes
