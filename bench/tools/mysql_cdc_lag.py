"""Lag of ``aggregator run --follow`` (MariaDB binlog CDC -> DuckDB) under a steady change rate.

The MariaDB counterpart of ``cdc_lag.py`` (same steps, same change mix):

1. builds ``aggbench_cdc.items`` (``--rows`` rows) on the MariaDB server;
2. starts ``aggregator run --follow`` (JSON logs) and waits for the initial snapshot;
3. writes ``--rate`` changes/s for ``--seconds`` (transactions of ``--txn`` changes: 30%
   inserts, 50% updates, 20% deletes, one statement each), noting for each transaction the
   binlog position read just before its ``COMMIT`` (``SHOW MASTER STATUS``: the end of the
   binlog before it, as ``cdc_lag.py`` reads a WAL position during the transaction) and the
   wall time right after the commit returned;
4. reads the CLI's log lines ``committed changes up to binlog FILE:POS`` (logged after the
   destination committed; positions are transaction ends): a transaction's lag is the
   arrival time of the first such line past its position, minus its commit time;
5. sends SIGTERM (the run must stop cleanly), compares the DuckDB table with the source row
   by row, and writes the figures (``lag_p50_s``, ``lag_p99_s``...) as JSON to ``--report``
   and stderr. Exit code 1 when the destination differs or the run failed.
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
from urllib.parse import unquote, urlsplit

import duckdb
import pymysql
from follow_lag import Watcher, lag_figures, wait

DATABASE = "aggbench_cdc"
_POSITION = re.compile(r"committed changes up to binlog (\S+):(\d+)")


def position(file: str, pos: int) -> tuple[int, int]:
    """A binlog position that sorts: (file number, offset)."""
    return int(file.rsplit(".", 1)[1]), pos


def connect(url: str, database: str | None = None) -> pymysql.Connection:  # type: ignore[type-arg]
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        autocommit=True,
    )


def prepare(cur: Any, rows: int) -> None:
    """A fresh database and table, filled from MariaDB's sequence engine."""
    cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    cur.execute(f"CREATE DATABASE {DATABASE}")
    cur.execute(
        f"CREATE TABLE {DATABASE}.items (id bigint PRIMARY KEY, v varchar(250), "
        "n decimal(12,2), at timestamp(6) NULL, doc json, tags json) ENGINE=InnoDB"
    )
    cur.execute(
        f"INSERT INTO {DATABASE}.items SELECT seq, concat('v', seq), seq / 100, "
        "utc_timestamp(6), json_object('g', seq), json_array('a', cast(seq AS char)) "
        f"FROM {DATABASE}.seq_1_to_{rows}"
    )


def write(
    con: Any, rate: float, seconds: float, size: int, first_id: int
) -> list[tuple[tuple[int, int], float]]:
    """Transactions of ``size`` changes at ``rate`` changes/s: (position before, commit time)."""
    rng = random.Random(5)
    cur = con.cursor()
    cur.execute(f"SELECT id FROM {DATABASE}.items")
    live = [r[0] for r in cur.fetchall()]
    next_id = first_id
    inserts, deletes = round(size * 0.3), round(size * 0.2)
    updates = size - inserts - deletes
    done: list[tuple[tuple[int, int], float]] = []
    con.autocommit(False)
    started = time.perf_counter()
    for k in range(int(rate * seconds / size)):
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
        last = next_id + inserts - 1
        count = cur.execute(
            f"INSERT INTO {DATABASE}.items SELECT seq, concat('i', seq), seq % 1000 / 4, "
            f"utc_timestamp(6), json_object('i', seq), json_array('x', cast(seq AS char)) "
            f"FROM {DATABASE}.seq_{next_id}_to_{last}"
        )
        count += cur.execute(
            f"UPDATE {DATABASE}.items SET v = concat(v, '+'), n = n + 1, at = utc_timestamp(6), "
            "doc = json_set(doc, '$.u', 1) WHERE id IN %s",
            [changed],
        )
        count += cur.execute(f"DELETE FROM {DATABASE}.items WHERE id IN %s", [gone])
        assert count == size, f"changed {count} rows, not {size}"
        cur.execute("SHOW MASTER STATUS")  # the binlog's end before this transaction
        file, pos = cur.fetchone()[:2]
        con.commit()
        done.append((position(str(file), int(pos)), time.time()))
        live.extend(range(next_id, last + 1))
        next_id = last + 1
    con.autocommit(True)
    return done


def same_rows(cur: Any, path: Path) -> bool:
    cur.execute(
        f"SELECT id, v, cast(n AS char), round(unix_timestamp(at) * 1000000), doc, tags "
        f"FROM {DATABASE}.items ORDER BY id"
    )
    source = [(i, v, n, int(at), json.loads(d), json.loads(t)) for i, v, n, at, d, t in cur]
    with duckdb.connect(str(path), read_only=True) as dest:
        got = dest.execute(
            'SELECT id, v, n::varchar, epoch_us("at"), doc::varchar, tags::varchar FROM items '
            "ORDER BY id"
        ).fetchall()
    return source == [(i, v, n, at, json.loads(d), json.loads(t)) for i, v, n, at, d, t in got]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="mysql://user:pw@host:port/ (needs CREATE)")
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
    con = connect(a.url)
    cur = con.cursor()
    prepare(cur, a.rows)
    spec = {
        "name": "mysql_cdc_bench",
        "sources": [
            {
                "name": "my",
                "type": "mysql",
                "config": {"url": a.url.rstrip("/") + "/" + DATABASE, "cdc": True},
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
    watcher = Watcher(proc, _POSITION, lambda m: position(m.group(1), int(m.group(2))))
    try:
        wait("the initial snapshot", lambda: watcher.checkpoints >= 1, 300)
        started = time.perf_counter()
        txns = write(con, a.rate, a.seconds, a.txn, a.rows + 1)
        wrote = time.perf_counter() - started
        last = txns[-1][0]
        wait(
            "the last change",
            lambda: bool(watcher.positions) and watcher.positions[-1] > last,
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
        **lag_figures(txns, watcher, after=True, txn=a.txn, wrote=wrote),
        "target_rate": a.rate,
        "commit_interval_s": a.commit_interval,
        "clean_stop": code == 0,
        "destination_equals_source": code == 0 and same_rows(cur, out),
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
