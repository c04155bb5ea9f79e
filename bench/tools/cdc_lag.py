"""Lag of ``aggregator run --follow`` (PostgreSQL CDC -> DuckDB) under a steady change rate.

1. builds ``cdc_bench.items`` (``--rows`` rows) in the benchmark database;
2. starts ``aggregator run --follow`` (JSON logs) and waits for the initial snapshot;
3. writes ``--rate`` changes/s for ``--seconds`` (transactions of ``--txn`` changes: 30%
   inserts, 50% updates, 20% deletes; one statement each), noting for each transaction
   a WAL position read during it and the wall time right after its commit returned;
4. reads the CLI's log lines ``committed changes up to LSN X`` (logged after the
   destination committed): a transaction's lag is the time of the first such line with
   ``X`` >= its LSN minus its commit time;
5. sends SIGTERM (the run must stop cleanly), compares the DuckDB table with the source
   row by row, and writes the figures (``lag_p50_s``, ``lag_p99_s``...) as JSON to
   ``--report`` and stderr. Exit code 1 when the destination differs or the run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from follow_lag import Watcher, lag_figures, wait

SCHEMA, PREFIX = "cdc_bench", "aggbench_cdc"
_LSN = re.compile(r"committed changes up to LSN (\S+)")


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def prepare(con: psycopg.Connection[Any], rows: int) -> None:
    """A fresh schema and table; leftovers of earlier runs (slot, publication) dropped."""
    con.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        "WHERE slot_name LIKE %s AND active_pid IS NOT NULL",
        [PREFIX + "%"],
    )
    time.sleep(0.2)
    con.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name LIKE %s",
        [PREFIX + "%"],
    )
    for (name,) in con.execute(
        "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", [PREFIX + "%"]
    ).fetchall():
        con.execute(f'DROP PUBLICATION "{name}"')
    con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    con.execute(f"CREATE SCHEMA {SCHEMA}")
    con.execute(
        f"CREATE TABLE {SCHEMA}.items (id bigint PRIMARY KEY, v text, n numeric(12,2), "
        "at timestamptz, doc jsonb, tags text[])"
    )
    con.execute(
        f"INSERT INTO {SCHEMA}.items SELECT g, 'v' || g, g / 100.0, now(), "
        "jsonb_build_object('g', g), ARRAY['a', g::text] FROM generate_series(1, %s) g",
        [rows],
    )
    con.execute(f"ANALYZE {SCHEMA}.items")


def write(
    con: psycopg.Connection[Any], rate: float, seconds: float, size: int, first_id: int
) -> list[tuple[int, float]]:
    """Transactions of ``size`` changes at ``rate`` changes/s: (LSN before commit, commit time)."""
    rng = random.Random(5)
    live = [r[0] for r in con.execute(f"SELECT id FROM {SCHEMA}.items").fetchall()]
    next_id = first_id
    inserts, deletes = round(size * 0.3), round(size * 0.2)
    updates = size - inserts - deletes
    done: list[tuple[int, float]] = []
    started = time.perf_counter()
    count = int(rate * seconds / size)
    for k in range(count):
        due = started + k * size / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        gone = []
        for _ in range(deletes):
            i = rng.randrange(len(live))
            gone.append(live[i])
            live[i] = live[-1]
            live.pop()
        changed = rng.sample(live, updates)
        # one statement, one round trip: an implicit transaction (autocommit) whose WAL
        # position, read during it, lies between the previous commit and its own
        row = con.execute(
            f"WITH ins AS (INSERT INTO {SCHEMA}.items SELECT g, 'i' || g, g %% 1000 / 4.0, "
            "now(), jsonb_build_object('i', g), ARRAY['x', g::text] "
            "FROM generate_series(%s::bigint, %s::bigint) g RETURNING 1), "
            f"upd AS (UPDATE {SCHEMA}.items SET v = v || '+', n = n + 1, at = now(), "
            "doc = doc || '{\"u\": 1}' WHERE id = ANY(%s) RETURNING 1), "
            f"del AS (DELETE FROM {SCHEMA}.items WHERE id = ANY(%s) RETURNING 1) "
            "SELECT pg_current_wal_insert_lsn()::text, (SELECT count(*) FROM ins) + "
            "(SELECT count(*) FROM upd) + (SELECT count(*) FROM del)",
            [next_id, next_id + inserts - 1, changed, gone],
        ).fetchone()
        assert row is not None and row[1] == size, f"changed {row} rows, not {size}"
        done.append((lsn(str(row[0])) if row else 0, time.time()))
        live.extend(range(next_id, next_id + inserts))
        next_id += inserts
    return done


def same_rows(con: psycopg.Connection[Any], path: Path) -> bool:
    columns = 'id, v, n, "at", doc::{t}, tags'
    source = con.execute(
        f"SELECT {columns.format(t='text')} FROM {SCHEMA}.items ORDER BY id"
    ).fetchall()
    with duckdb.connect(str(path), read_only=True) as dest:
        got = dest.execute(
            f"SELECT {columns.format(t='varchar')} FROM items ORDER BY id"
        ).fetchall()
    return [tuple(r) for r in source] == [tuple(r) for r in got]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="the benchmark database (superuser)")
    p.add_argument("--work", required=True, help="scratch directory (emptied)")
    p.add_argument("--report", required=True, help="JSON file for the figures")
    p.add_argument("--rate", type=float, default=5000.0, help="changes per second")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--txn", type=int, default=50, help="changes per source transaction")
    p.add_argument("--rows", type=int, default=100_000, help="rows before the changes")
    p.add_argument("--commit-interval", type=float, default=1.0)
    a = p.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "cdc.duckdb"
    con = psycopg.connect(a.url, autocommit=True)
    prepare(con, a.rows)
    spec = {
        "name": "cdc_bench",
        "sources": [
            {
                "name": "pg",
                "type": "postgres",
                "config": {"url": a.url, "schemas": [SCHEMA], "cdc": True, "slot_prefix": PREFIX},
                "streams": [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(out)}},
    }
    pipeline = work / "pipeline.yml"
    pipeline.write_text(json.dumps(spec))  # JSON is YAML
    env = dict(
        os.environ,
        AGGREGATOR_HOME=str(work / "home"),
        AGGREGATOR_LOG_FORMAT="json",
        AGGREGATOR_LOG_LEVEL="info",
    )
    cmd = [sys.executable, "-m", "aggregator.cli.main", "run", str(pipeline), "--follow"]
    cmd += ["--commit-interval", str(a.commit_interval)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    watcher = Watcher(proc, _LSN, lambda m: lsn(m.group(1)))
    try:
        wait("the initial snapshot", lambda: watcher.checkpoints >= 2, 300)
        started = time.perf_counter()
        txns = write(con, a.rate, a.seconds, a.txn, a.rows + 1)
        wrote = time.perf_counter() - started
        last = txns[-1][0]
        wait(
            "the last change",
            lambda: bool(watcher.positions) and watcher.positions[-1] >= last,
            120,
        )
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    watcher.thread.join(timeout=10)
    figures = {
        **lag_figures(txns, watcher, after=False, txn=a.txn, wrote=wrote),
        "target_rate": a.rate,
        "commit_interval_s": a.commit_interval,
        "clean_stop": code == 0,
        "destination_equals_source": code == 0 and same_rows(con, out),
    }
    con.close()
    Path(a.report).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures), file=sys.stderr)
    if not figures["destination_equals_source"]:
        print("".join(watcher.tail), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
