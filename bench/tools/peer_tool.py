"""Peer tools, run from bench/.venv-peers: connectorx, ADBC and dlt (three backends)."""

from __future__ import annotations

import argparse
import sys
import tempfile


def _write(table, dest: str, out: str, name: str) -> None:  # type: ignore[no-untyped-def]
    if dest == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, f"{out}/{name}.parquet", compression="zstd")
    elif dest == "duckdb":
        import duckdb

        con = duckdb.connect(out)
        con.register("src", table)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM src')
        con.close()
    else:
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(out) as con, con.cursor() as cur:
            cur.adbc_ingest(name, table, mode="create", db_schema_name="peers")
            con.commit()


def connectorx(url: str, table: str, dest: str, out: str) -> None:
    import connectorx as cx

    _write(cx.read_sql(url, f"SELECT * FROM {table}", return_type="arrow"), dest, out, table)


def adbc(url: str, table: str, dest: str, out: str) -> None:
    import adbc_driver_postgresql.dbapi as adbc_pg

    with adbc_pg.connect(url) as con, con.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        data = cur.fetch_arrow_table()
    _write(data, dest, out, table)


def dlt_run(backend: str, url: str, table: str, dest: str, out: str) -> None:
    import dlt
    from dlt.sources.sql_database import sql_table

    if dest == "parquet":
        destination = dlt.destinations.filesystem(bucket_url=f"file://{out}")
        fmt = "parquet"
    elif dest == "duckdb":
        destination = dlt.destinations.duckdb(out)
        fmt = None
    else:
        # dlt insists on a password; the benchmark server trusts loopback and ignores it
        if "@" in out and ":" not in out.split("://", 1)[1].split("@", 1)[0]:
            out = out.replace("@", ":bench@", 1)
        destination = dlt.destinations.postgres(credentials=out)
        fmt = None
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{backend}",
            destination=destination,
            dataset_name="dlt_" + backend,
            pipelines_dir=tmp,
        )
        source = sql_table(credentials=url, table=table, backend=backend)
        info = pipeline.run(source, loader_file_format=fmt)
        info.raise_on_failed_jobs()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("tool")
    p.add_argument("--url", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--dest", choices=["parquet", "duckdb", "postgres"], required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.tool.startswith("dlt-"):
        dlt_run(a.tool[4:], a.url, a.table, a.dest, a.out)
    elif a.tool == "connectorx":
        connectorx(a.url, a.table, a.dest, a.out)
    elif a.tool == "adbc":
        adbc(a.url, a.table, a.dest, a.out)
    else:
        print(f"unknown tool {a.tool}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
