"""MariaDB -> DuckDB: aggregator (mysql source, and the generic sql source) against peers.

The data is the PostgreSQL benchmark's pgbench_accounts (5M rows) and the first 500,000 rows
of its wide table, copied into MariaDB once (bench/tools/mysql_load.py, idempotent; ``wide``
in MariaDB types). MariaDB's text protocol makes wide rows slow for every client (connectorx
~40k rows/s): the whole 2M-row table would add ~13 minutes to ``make bench``. There is no
raw-export limit tool here: MariaDB has no binary bulk export to stdout comparable to
PostgreSQL's ``COPY``. Row-by-row paths read a subset (a view of the first N keys), sized so
one run takes about 20-30 s on a quiet machine: their entries say ``subset: N of M rows``.
"""

from __future__ import annotations

import subprocess

from common import BENCH_DIR, Context, Scenario, ToolRun

#: subset sizes of the row-by-row paths: our generic sql source (~30k accounts, ~2-4k wide
#: rows/s), dlt's sqlalchemy backend (~4k / ~1k rows/s), dlt's pyarrow backend (pymysql
#: underneath, ~25k / ~3k rows/s)
SUBSETS = {
    "pgbench_accounts": {"sql": 200_000, "sqlalchemy": 100_000, "pyarrow": 500_000},
    "wide": {"sql": 20_000, "sqlalchemy": 20_000, "pyarrow": 50_000},
}
#: rows of wide copied into MariaDB (quick mode: all of the small wide table)
MYSQL_WIDE_ROWS = 500_000
SHORT = {"pgbench_accounts": "accounts", "wide": "wide"}


def _mysql_url(ctx: Context) -> str:
    server = ctx.services["AGGREGATOR_TEST_MYSQL_URL"].rstrip("/")
    return f"{server}/{ctx.pg_url.rsplit('/', 1)[1]}"  # aggbench or aggbench_quick


def _load(ctx: Context) -> None:
    server = ctx.services["AGGREGATOR_TEST_MYSQL_URL"]
    sizes = {t: sorted(set(s.values())) for t, s in SUBSETS.items()}
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
            *[f"--slice={n}" for n in sizes["pgbench_accounts"]],
            "--wide-rows",
            str(_wide_rows(ctx)),
            *[f"--wide-slice={n}" for n in sizes["wide"]],
        ],
        check=True,
    )


def _wide_rows(ctx: Context) -> int:
    return min(MYSQL_WIDE_ROWS, ctx.rows["wide"])


def _tools(ctx: Context, table: str) -> dict[str, ToolRun]:
    url = _mysql_url(ctx)
    rows = _wide_rows(ctx) if table == "wide" else ctx.rows[table]
    out = str(ctx.work / "mysql_out.duckdb")
    reset = [["rm", "-f", out, out + ".wal"]]
    ours = [ctx.project_python, str(BENCH_DIR / "tools" / "mysql_aggregator_tool.py")]
    peer = [ctx.peers_python, str(BENCH_DIR / "tools" / "mysql_peer_tool.py")]

    def subset(cmd: list[str], path: str) -> ToolRun:
        size = SUBSETS[table][path]
        if size >= rows:
            return ToolRun([*cmd, "--table", table], reset)
        view = f"bench_slice_{SHORT[table]}_{size}"
        return ToolRun([*cmd, "--table", view], reset, size, "row-by-row path")

    args = ["--url", url, "--out", out]
    return {
        "aggregator": ToolRun([*ours, *args, "--table", table], reset),
        "aggregator-sql": subset([*ours, *args, "--source", "sql"], "sql"),
        "connectorx": ToolRun([*peer, "connectorx", *args, "--table", table], reset),
        "dlt-connectorx": ToolRun([*peer, "dlt-connectorx", *args, "--table", table], reset),
        "dlt-pyarrow": subset([*peer, "dlt-pyarrow", *args], "pyarrow"),
        "dlt-sqlalchemy": subset([*peer, "dlt-sqlalchemy", *args], "sqlalchemy"),
    }


def scenarios(ctx: Context) -> list[Scenario]:
    """``mysql_accounts_to_duckdb`` and ``mysql_wide_to_duckdb``."""
    if "AGGREGATOR_TEST_MYSQL_URL" not in ctx.services:
        return []
    _load(ctx)
    return [
        Scenario(
            "mysql_accounts_to_duckdb",
            ctx.rows["pgbench_accounts"],
            _tools(ctx, "pgbench_accounts"),
        ),
        Scenario("mysql_wide_to_duckdb", _wide_rows(ctx), _tools(ctx, "wide")),
    ]
