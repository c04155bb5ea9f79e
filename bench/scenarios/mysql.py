"""MariaDB -> DuckDB: aggregator (mysql source, and the generic sql source) against peers.

The data is the PostgreSQL benchmark's pgbench_accounts, copied into MariaDB once
(bench/tools/mysql_load.py, idempotent). There is no raw-export limit tool here: MariaDB
has no binary bulk export to stdout comparable to PostgreSQL's ``COPY``.
"""

from __future__ import annotations

import subprocess

from common import BENCH_DIR, Context, Scenario, ToolRun

#: slices for the row-by-row paths: dlt's sqlalchemy backend and our generic sql source
#: (~1-10k rows/s), and dlt's pyarrow backend (pymysql underneath, ~10-40k rows/s)
SLICE_ROWS = 200_000
PYARROW_SLICE_ROWS = 1_000_000


def _mysql_url(ctx: Context) -> str:
    server = ctx.services["AGGREGATOR_TEST_MYSQL_URL"].rstrip("/")
    return f"{server}/{ctx.pg_url.rsplit('/', 1)[1]}"  # aggbench or aggbench_quick


def _load(ctx: Context) -> None:
    server = ctx.services["AGGREGATOR_TEST_MYSQL_URL"]
    subprocess.run(
        [
            ctx.project_python,
            str(BENCH_DIR / "tools" / "mysql_load.py"),
            "--pg-url",
            ctx.pg_url,
            "--mysql-url",
            server,
            "--database",
            _mysql_url(ctx).rsplit("/", 1)[1],
            "--rows",
            str(ctx.rows["pgbench_accounts"]),
            "--slice",
            str(SLICE_ROWS),
            "--slice",
            str(PYARROW_SLICE_ROWS),
        ],
        check=True,
    )


def scenarios(ctx: Context) -> list[Scenario]:
    """``mysql_accounts_to_duckdb``."""
    if "AGGREGATOR_TEST_MYSQL_URL" not in ctx.services:
        return []
    _load(ctx)
    url, rows = _mysql_url(ctx), ctx.rows["pgbench_accounts"]
    out = str(ctx.work / "mysql_out.duckdb")
    reset = [["rm", "-f", out, out + ".wal"]]
    ours = [ctx.project_python, str(BENCH_DIR / "tools" / "mysql_aggregator_tool.py")]
    peer = [ctx.peers_python, str(BENCH_DIR / "tools" / "mysql_peer_tool.py")]

    def slice_of(cmd: list[str], size: int) -> ToolRun:
        if size >= rows:
            return ToolRun([*cmd, "--table", "pgbench_accounts"], reset)
        note = f"slice of {size:,} rows (row-by-row path, too slow for the whole table)"
        return ToolRun([*cmd, "--table", f"bench_slice_accounts_{size}"], reset, size, note)

    args = ["--url", url, "--out", out]
    tools = {
        "aggregator": ToolRun([*ours, *args, "--table", "pgbench_accounts"], reset),
        "aggregator-sql": slice_of([*ours, *args, "--source", "sql"], SLICE_ROWS),
        "connectorx": ToolRun([*peer, "connectorx", *args, "--table", "pgbench_accounts"], reset),
        "dlt-connectorx": ToolRun(
            [*peer, "dlt-connectorx", *args, "--table", "pgbench_accounts"], reset
        ),
        "dlt-pyarrow": slice_of([*peer, "dlt-pyarrow", *args], PYARROW_SLICE_ROWS),
        "dlt-sqlalchemy": slice_of([*peer, "dlt-sqlalchemy", *args], SLICE_ROWS),
    }
    return [Scenario("mysql_accounts_to_duckdb", rows, tools)]
