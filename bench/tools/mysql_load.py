"""Copy the benchmark's pgbench_accounts from PostgreSQL into MariaDB, once.

Idempotent: a ``bench_meta`` table in the MariaDB database records what was loaded (the
PostgreSQL row count); a matching marker skips the load. The rows go through a CSV file
(``psql \\copy ... TO``) and ``LOAD DATA LOCAL INFILE``.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pg-url", required=True)
    p.add_argument("--mysql-url", required=True, help="server URL (no database)")
    p.add_argument("--database", required=True)
    p.add_argument("--rows", type=int, required=True, help="rows of pgbench_accounts")
    p.add_argument("--slice", type=int, action="append", required=True, help="rows of a slice view")
    a = p.parse_args()
    marker = f"pgbench_accounts={a.rows} slices={','.join(map(str, a.slice))}"
    with connect(a.mysql_url) as con, con.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{a.database}`")
        cur.execute(f"USE `{a.database}`")
        cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (note varchar(200))")
        cur.execute("SELECT note FROM bench_meta")
        if (row := cur.fetchone()) and row[0] == marker:
            return 0
        print(f"[bench] loading pgbench_accounts into MariaDB {a.database} ...", flush=True)
        started = time.perf_counter()
        cur.execute("DROP TABLE IF EXISTS pgbench_accounts")
        cur.execute(
            "CREATE TABLE pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int, "
            "abalance int, filler char(84)) ENGINE=InnoDB"
        )
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "accounts.csv"
            subprocess.run(
                [
                    "psql",
                    "-qX",
                    a.pg_url,
                    "-c",
                    f"\\copy (SELECT * FROM pgbench_accounts ORDER BY aid) TO '{csv}' CSV",
                ],
                check=True,
            )
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE pgbench_accounts "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'"
            )
        for rows in a.slice:
            cur.execute(
                f"CREATE OR REPLACE VIEW bench_slice_accounts_{rows} AS SELECT * FROM "
                f"pgbench_accounts WHERE aid <= {rows}"
            )
        cur.execute("ANALYZE TABLE pgbench_accounts")
        cur.fetchall()
        cur.execute("DELETE FROM bench_meta")
        cur.execute("INSERT INTO bench_meta VALUES (%s)", [marker])
        print(f"[bench] MariaDB data loaded in {time.perf_counter() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
