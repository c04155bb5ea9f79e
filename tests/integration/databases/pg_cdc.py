"""Helpers for change data capture tests: schemas whose slots are dropped, change writers."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tests.integration.databases.pg import PgSchema

#: The table the CDC tests change: a key and a few exact types.
ITEMS_DDL = (
    "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12,2), at timestamptz, "
    "doc jsonb, tags text[])"
)


class CdcSchema(PgSchema):
    """A private schema plus a unique slot prefix; slots and publications dropped at the end."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.prefix = f"agg_{uuid.uuid4().hex[:8]}"

    def cdc_source(self, prefix: str | None = None, **extra: Any) -> dict[str, Any]:
        return self.source(cdc=True, slot_prefix=prefix or self.prefix, **extra)

    def drop(self) -> None:
        self.con.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE slot_name LIKE %s AND active_pid IS NOT NULL",
            [self.prefix + "%"],
        )
        for _ in range(50):
            try:
                self.con.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name LIKE %s",
                    [self.prefix + "%"],
                )
                break
            except psycopg.errors.ObjectInUse:  # a killed reader's backend is still ending
                time.sleep(0.1)
        for (name,) in self.execute(
            "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", [self.prefix + "%"]
        ):
            self.con.execute(f'DROP PUBLICATION "{name}"')
        super().drop()


def cdc_schema(url: str) -> Iterator[CdcSchema]:
    schema = CdcSchema(url)
    try:
        yield schema
    finally:
        schema.drop()


def pipeline(
    name: str, source: dict[str, Any], destination: dict[str, Any], table: str = "items"
) -> dict[str, Any]:
    """A one-stream CDC pipeline spec."""
    return {
        "name": name,
        "sources": [
            {
                "name": "db",
                "type": "postgres",
                "config": source,
                "streams": [
                    {
                        "name": table,
                        "sync_mode": "incremental",
                        "primary_key": ["id"],
                        "write_mode": "merge",
                    }
                ],
            }
        ],
        "destination": destination,
    }


def fill(con: psycopg.Connection[Any], rows: int) -> None:
    """``rows`` rows with ids 1..rows."""
    con.execute(
        "INSERT INTO items SELECT g, 'v' || g, g / 100.0, timestamptz '2024-01-01' + "
        "g * interval '1 second', jsonb_build_object('g', g), ARRAY['a', g::text] "
        "FROM generate_series(1, %s) g",
        [rows],
    )


class ChangeWriter:
    """Applies random inserts, updates and deletes to ``items``, in small transactions.

    Ids already used are never inserted twice, so the final table is deterministic given
    the sequence of statements; every statement changes exactly one row.
    """

    def __init__(self, con: psycopg.Connection[Any], next_id: int, seed: int = 7) -> None:
        self.con = con
        self.next_id = next_id
        self.live = [r[0] for r in con.execute("SELECT id FROM items").fetchall()]
        self.random = random.Random(seed)
        self.changes = 0
        self.last_lsn = "0/0"  # an LSN just before the last transaction's commit

    def transaction(self, size: int) -> None:
        """One transaction of ``size`` single-row changes (half updates, 30% inserts)."""
        with self.con.transaction(), self.con.cursor() as cur:
            for _ in range(size):
                roll = self.random.random()
                if roll < 0.3 or len(self.live) < 10:
                    key = self.next_id
                    self.next_id += 1
                    cur.execute(
                        "INSERT INTO items VALUES (%s, %s, %s, now(), %s::jsonb, %s)",
                        [key, f"i{key}", key % 1000 / 4, f'{{"i": {key}}}', ["x", str(key)]],
                    )
                    self.live.append(key)
                elif roll < 0.8:
                    key = self.random.choice(self.live)
                    cur.execute(
                        "UPDATE items SET v = v || '+', n = n + 1, at = now(), "
                        "doc = doc || '{\"u\": 1}', tags = tags || 'u'::text WHERE id = %s",
                        [key],
                    )
                else:
                    index = self.random.randrange(len(self.live))
                    key = self.live[index]
                    self.live[index] = self.live[-1]
                    self.live.pop()
                    cur.execute("DELETE FROM items WHERE id = %s", [key])
                self.changes += 1
            row = cur.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            self.last_lsn = str(row[0]) if row else self.last_lsn


def rows_of(con: Any, table: str = "items", text: str = "text") -> list[tuple[Any, ...]]:
    """Every row of ``table`` in key order, JSON as text (``text``: the SQL text type)."""
    query = f'SELECT id, v, n, "at", doc::{text}, tags FROM {table} ORDER BY id'
    return [tuple(r) for r in con.execute(query).fetchall()]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def second_cluster(tmp: Path, port: int, wal_level: str) -> Iterator[str]:
    """A throw-away PostgreSQL cluster (initdb) on ``port``; yields its URL."""
    pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = tmp / "cluster"
    data.mkdir(parents=True)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        for parent in (tmp, *tmp.parents):
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = [*as_postgres, str(pgbin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run([*run, "--no-sync"], check=True, capture_output=True)
    options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} "
    options += f"-c wal_level={wal_level} -c fsync=off"
    log = str(data / "server.log")
    subprocess.run(
        [
            *as_postgres,
            str(pgbin / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            log,
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PGPORT": str(port)},
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(pgbin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
