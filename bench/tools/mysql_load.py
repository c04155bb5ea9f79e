"""Copy the benchmark's pgbench_accounts and wide tables from PostgreSQL into MariaDB, once.

Idempotent: a ``bench_meta`` table in the MariaDB database records what was loaded (row
counts, a hash of the table definitions); a matching marker skips the load (the slice views
are made every time). The rows go through a CSV file (``psql \\copy ... TO``) and
``LOAD DATA LOCAL INFILE``.

``wide`` in MariaDB types: text, varchar(100), decimal(12,2), timestamp(6) (instants, loaded
at time zone UTC), date, boolean (tinyint(1)), JSON (payload, and tags: MariaDB has no
arrays, a JSON array is its usual stand-in), uuid, double, datetime(6).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pymysql


def connect(url: str, database: str | None = None) -> pymysql.Connection:  # type: ignore[type-arg]
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        autocommit=True,
        local_infile=True,
    )


ACCOUNTS = (
    "CREATE TABLE pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int, "
    "abalance int, filler char(84)) ENGINE=InnoDB"
)
ACCOUNTS_EXPORT = "SELECT * FROM pgbench_accounts ORDER BY aid"
WIDE = (
    "CREATE TABLE wide (id bigint NOT NULL PRIMARY KEY, name text, email varchar(100), "
    "amount decimal(12,2), created_at timestamp(6) NULL, birth date, active boolean, "
    "payload json, uid uuid, score double, tags json, updated_at datetime(6)) ENGINE=InnoDB"
)
WIDE_EXPORT = (
    "SELECT id, name, email, amount, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD HH24:MI:SS.US'), birth, active::int, payload::text, uid, score, "
    "to_json(tags)::text, updated_at FROM wide WHERE id <= {rows} ORDER BY id"
)


def load(cur: pymysql.cursors.Cursor, pg_url: str, table: str, create: str, export: str) -> None:
    """Recreate ``table`` in MariaDB and fill it from PostgreSQL through a CSV file."""
    cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    cur.execute(create)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / f"{table}.csv"
        subprocess.run(
            ["psql", "-qX", pg_url, "-c", f"\\copy ({export}) TO '{csv}' CSV"], check=True
        )
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE `{table}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            "LINES TERMINATED BY '\\n'"
        )
    cur.execute(f"ANALYZE TABLE `{table}`")
    cur.fetchall()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pg-url", required=True)
    p.add_argument("--mysql-url", required=True, help="server URL (no database)")
    p.add_argument("--database", required=True)
    p.add_argument("--rows", type=int, required=True, help="rows of pgbench_accounts")
    p.add_argument("--slice", type=int, action="append", required=True, help="rows of a slice view")
    p.add_argument("--wide-rows", type=int, required=True, help="rows of wide (its first ids)")
    p.add_argument("--wide-slice", type=int, action="append", default=[], help="rows of a slice")
    a = p.parse_args()
    wanted = {  # table -> (definition, export query, rows, slice views)
        "pgbench_accounts": (ACCOUNTS, ACCOUNTS_EXPORT, a.rows, a.slice, "aid"),
        "wide": (WIDE, WIDE_EXPORT, a.wide_rows, a.wide_slice, "id"),
    }
    with connect(a.mysql_url) as con, con.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{a.database}`")
        cur.execute(f"USE `{a.database}`")
        cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (note varchar(200))")
        cur.execute("SELECT note FROM bench_meta")
        done = {str(row[0]) for row in cur.fetchall()}
        for table, (create, export, rows, slices, key) in wanted.items():
            recipe = hashlib.sha256(f"{create}\0{export}".encode()).hexdigest()[:12]
            marker = f"{table}={rows} recipe={recipe}"
            if marker not in done:
                print(f"[bench] loading {table} into MariaDB {a.database} ...", flush=True)
                started = time.perf_counter()
                cur.execute("DELETE FROM bench_meta WHERE note LIKE %s", [f"{table}=%"])
                load(cur, a.pg_url, table, create, export.format(rows=rows))
                cur.execute("INSERT INTO bench_meta VALUES (%s)", [marker])
                seconds = time.perf_counter() - started
                print(f"[bench] MariaDB {table} loaded in {seconds:.0f}s", flush=True)
            short = "accounts" if table == "pgbench_accounts" else table
            for size in slices:  # views: cheap, made every time
                cur.execute(
                    f"CREATE OR REPLACE VIEW bench_slice_{short}_{size} AS SELECT * FROM "
                    f"`{table}` WHERE `{key}` <= {size}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
