"""Measures extraction options for ADR 0002 (run: python bench/probe_extraction.py URL TABLE).

Each option reads the whole table into Arrow batches (or /dev/null for the COPY limit) and
drops them; prints wall seconds and peak RSS growth.
"""

from __future__ import annotations

import io
import resource
import sys
import threading
import time

import psycopg
import pyarrow.csv as pcsv


def copy_binary(url: str, table: str) -> int:
    n = 0
    with (
        psycopg.connect(url) as con,
        con.cursor() as cur,
        cur.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy,
    ):
        for block in copy:
            n += len(block)
    return n


def adbc_stream(url: str, table: str, where: str = "") -> int:
    import adbc_driver_postgresql.dbapi as d

    rows = 0
    with d.connect(url) as con, con.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} {where}")
        for batch in cur.fetch_record_batch():
            rows += batch.num_rows
    return rows


def adbc_parallel(url: str, table: str, parts: int = 2) -> int:
    with psycopg.connect(url) as con:
        key = "aid" if "accounts" in table else "id"
        lo, hi = con.execute(f"SELECT min({key}), max({key}) FROM {table}").fetchone()  # type: ignore[misc]
    step = (hi - lo + parts) // parts
    out = [0] * parts

    def run(i: int) -> None:
        a = lo + i * step
        out[i] = adbc_stream(url, table, f"WHERE {key} >= {a} AND {key} < {a + step}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out)


class _Pipe(io.RawIOBase):
    def __init__(self, it) -> None:  # type: ignore[no-untyped-def]
        self.it, self.buf = it, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self.buf:
            try:
                self.buf = bytes(next(self.it))
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def copy_csv(url: str, table: str) -> int:
    rows = 0
    with (
        psycopg.connect(url) as con,
        con.cursor() as cur,
        cur.copy(f"COPY {table} TO STDOUT (FORMAT csv)") as copy,
    ):
        reader = pcsv.open_csv(
            io.BufferedReader(_Pipe(iter(copy)), 1 << 20),
            read_options=pcsv.ReadOptions(autogenerate_column_names=True, block_size=8 << 20),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
        )
        for batch in reader:
            rows += batch.num_rows
    return rows


if __name__ == "__main__":
    url, table, option = sys.argv[1], sys.argv[2], sys.argv[3]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    n = globals()[option](url, table)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{option:14s} {table:18s} {dt:6.2f}s  rows/bytes={n}  peak_rss={peak:.0f}MB")
