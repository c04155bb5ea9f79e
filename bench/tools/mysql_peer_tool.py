"""Peer tools reading MariaDB, run from bench/.venv-peers: connectorx and dlt (three backends)."""

from __future__ import annotations

import argparse
import sys
import tempfile


def connectorx(url: str, table: str, out: str) -> None:
    import connectorx as cx
    import duckdb

    data = cx.read_sql(url, f"SELECT * FROM {table}", return_type="arrow")
    con = duckdb.connect(out)
    con.register("src", data)
    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM src')
    con.close()


def dlt_run(backend: str, url: str, table: str, out: str) -> None:
    import dlt
    from dlt.sources.sql_database import sql_table

    credentials = url.replace("mysql://", "mysql+pymysql://", 1)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_mysql_{backend}",
            destination=dlt.destinations.duckdb(out),
            dataset_name="dlt_" + backend,
            pipelines_dir=tmp,
        )
        source = sql_table(credentials=credentials, table=table, backend=backend)
        info = pipeline.run(source)
        info.raise_on_failed_jobs()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("tool")
    p.add_argument("--url", required=True, help="mysql://user:pw@host:port/database")
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True, help=".duckdb file")
    a = p.parse_args()
    if a.tool.startswith("dlt-"):
        dlt_run(a.tool[4:], a.url, a.table, a.out)
    elif a.tool == "connectorx":
        connectorx(a.url, a.table, a.out)
    else:
        print(f"unknown tool {a.tool}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
