"""Validate the exported pgbench_accounts Parquet data with pandera (pandas backend): the
rules of ``validate_aggregator.py``. Runs in bench/.venv-peers."""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import pandera.pandas as pa


def schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "aid": pa.Column("int32", pa.Check.ge(1), nullable=False, unique=True),
            "bid": pa.Column("int32", pa.Check.in_range(1, 100000), nullable=False),
            "abalance": pa.Column(
                "int32", pa.Check.in_range(-100000000, 100000000), nullable=False
            ),
            "filler": pa.Column(
                str,
                [pa.Check.str_length(max_value=84), pa.Check.str_matches(r"^[ a-z0-9]*$")],
                nullable=True,
            ),
        }
    )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="directory of Parquet files")
    a = p.parse_args()
    frame = pd.read_parquet(a.data)
    failed = 0
    try:
        schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failed = len(exc.failure_cases)
    print(f"rows={len(frame)} failed={failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
