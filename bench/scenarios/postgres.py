"""PostgreSQL -> Parquet / DuckDB / PostgreSQL, aggregator against its peers."""

from __future__ import annotations

from common import BENCH_DIR, Context, Scenario, ToolRun

#: dlt's default backend converts row by row (~4k rows/s on wide): it runs on a slice.
SLICE_ROWS = {"pgbench_accounts": 200_000, "wide": 100_000}
SLICE_VIEWS = {
    "pgbench_accounts": ("bench_slice_accounts", "aid"),
    "wide": ("bench_slice_wide", "id"),
}


def setup_sql(ctx: Context) -> list[str]:
    """Views the slow peers read (only used outside quick mode)."""
    return [
        f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table} WHERE {key} <= {SLICE_ROWS[table]}"
        for table, (view, key) in SLICE_VIEWS.items()
    ]


def _tools(ctx: Context, table: str, dest: str) -> dict[str, ToolRun]:
    work = ctx.work / "pg"  # its own folder: other scenarios may run at the same time
    if dest == "parquet":
        out, reset = (
            str(work / "out"),
            [["rm", "-rf", str(work / "out")], ["mkdir", "-p", str(work / "out")]],
        )
    elif dest == "duckdb":
        out, reset = (
            str(work / "out.duckdb"),
            [
                ["rm", "-f", str(work / "out.duckdb"), str(work / "out.duckdb.wal")],
                ["mkdir", "-p", str(work)],
            ],
        )
    else:
        out = ctx.pg_target_url
        reset = [
            ["psql", "-q", out, "-c", f"DROP SCHEMA IF EXISTS {s} CASCADE"]
            for s in ("aggregator", "peers", "dlt_connectorx", "dlt_pyarrow", "dlt_sqlalchemy")
        ] + [["psql", "-q", out, "-c", "CREATE SCHEMA peers"]]
    peer = [ctx.peers_python, str(BENCH_DIR / "tools" / "peer_tool.py")]
    args = ["--url", ctx.pg_url, "--dest", dest, "--out", out]
    ours = [ctx.project_python, str(BENCH_DIR / "tools" / "aggregator_tool.py")]
    metadata = str(work / "aggregator-metadata.db")  # kept between runs, like .aggregator/
    tools = {
        "aggregator": ToolRun(
            [*ours, "--table", table, *args, "--metadata", metadata],
            [
                *reset,
                ["mkdir", "-p", str(work)],
                ["rm", "-f", metadata],  # fresh and migrated: the timed run only checks it
                [*ours, "--init-metadata", metadata],
            ],
        ),
        "copy": ToolRun(
            [
                "bash",
                "-c",
                f"psql '{ctx.pg_url}' -c 'COPY {table} TO STDOUT (FORMAT binary)' > /dev/null",
            ]
        ),
    }
    if dest != "postgres":
        tools["connectorx"] = ToolRun([*peer, "connectorx", "--table", table, *args], reset)
    tools["adbc"] = ToolRun([*peer, "adbc", "--table", table, *args], reset)
    for backend in ("connectorx", "pyarrow", "sqlalchemy"):
        name = f"dlt-{backend}"
        if backend == "sqlalchemy" and not ctx.quick:
            view = SLICE_VIEWS[table][0]
            rows = min(SLICE_ROWS[table], ctx.rows[table])
            tools[name] = ToolRun(
                [*peer, name, "--table", view, *args],
                reset,
                rows=rows,
                note=f"slice of {rows:,} rows (too slow for the whole table)",
            )
        else:
            tools[name] = ToolRun([*peer, name, "--table", table, *args], reset)
    return tools


def scenarios(ctx: Context) -> list[Scenario]:
    """The PostgreSQL scenarios of the issue."""
    accounts, wide = ctx.rows["pgbench_accounts"], ctx.rows["wide"]
    return [
        Scenario("pg_accounts_to_parquet", accounts, _tools(ctx, "pgbench_accounts", "parquet")),
        Scenario("pg_accounts_to_duckdb", accounts, _tools(ctx, "pgbench_accounts", "duckdb")),
        Scenario("pg_wide_to_parquet", wide, _tools(ctx, "wide", "parquet")),
        Scenario("pg_wide_to_duckdb", wide, _tools(ctx, "wide", "duckdb")),
        Scenario("pg_accounts_to_postgres", accounts, _tools(ctx, "pgbench_accounts", "postgres")),
    ]
