"""``singer_jsonl_to_duckdb``, tool ``meltano``: ``meltano run tap-jsonl target-duckdb`` in
the project ``singer_setup.py`` prepared, on the same data.

Writes ``{"meltano_cpu_s", "rows"}`` to ``--cpu-out``: the CPU time of the whole Meltano
process tree (meltano, the tap and the target), and checks the rows that arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from singer_setup import MELTANO_VENV, PROJECT, meltano_env


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", required=True, help="the DuckDB file target-duckdb writes")
    p.add_argument("--cpu-out", required=True)
    a = p.parse_args()
    proc = subprocess.Popen(
        [str(MELTANO_VENV / "bin" / "meltano"), "run", "tap-jsonl", "target-duckdb"],
        cwd=PROJECT,
        env=meltano_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        return 1
    import duckdb  # the project venv's, only to check the result

    with duckdb.connect(a.out, read_only=True) as con:
        loaded = con.execute("select count(*) from main.wide").fetchone()
    # target-duckdb 0.8.0 loses the first record of every batch it flushes (ids 0, 100000,
    # 200000, ... with its default batch_size_rows of 100,000): the loss is reported in the
    # result (`rows_loaded`, `rows_lost`); the run fails only when more than that is missing
    batches = -(-a.rows // 100_000)
    if loaded is None or loaded[0] < a.rows - batches:
        print(f"expected {a.rows} rows (at most {batches} lost), found {loaded}", file=sys.stderr)
        return 1
    cpu = usage.ru_utime + usage.ru_stime
    measured = {
        "meltano_cpu_s": round(cpu, 2),
        "rows_loaded": loaded[0],
        "rows_lost": a.rows - loaded[0],
    }
    Path(a.cpu_out).write_text(json.dumps(measured) + "\n")
    print(f"rows={loaded[0]} meltano_cpu_s={cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
