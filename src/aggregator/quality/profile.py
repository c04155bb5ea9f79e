"""Column profiles computed incrementally over Arrow batches.

Exact: count, nulls, min, max, mean, stddev (merged with Chan's formula). Distinct is exact
up to ``EXACT_DISTINCT`` values (a set of 64-bit hashes) and a HyperLogLog estimate beyond.
Top values are merged per batch (the ``TOP_CANDIDATES`` most frequent values of each batch
with the candidates so far); histograms come from a bottom-k sample of ``SAMPLE`` rows.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EXACT_DISTINCT = 100_000
HLL_P = 14
TOP_CANDIDATES = 1000
TOP = 10
SAMPLE = 10_000
BINS = 10
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class ColumnProfile:
    """Running statistics of one column."""

    def __init__(self, dtype: pa.DataType) -> None:
        self.dtype = dtype
        self.count = 0
        self.nulls = 0
        self.min: Any = None
        self.max: Any = None
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.hashes: np.ndarray | None = np.empty(0, np.uint64)
        self.registers = np.zeros(1 << HLL_P, np.uint8)
        self.top: pa.Table | None = None
        self.sample = np.empty(0, np.float64)
        self.sample_keys = np.empty(0, np.uint64)

    @property
    def numeric(self) -> bool:
        """Whether mean, stddev and histogram apply."""
        t = self.dtype
        return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))

    def update(self, values: pa.Array, hashes: np.ndarray, row_keys: np.ndarray) -> None:
        """Fold in one batch of values, their value hashes and per-row sample keys."""
        self.count += len(values)
        self.nulls += values.null_count
        valid = np.asarray(pc.is_valid(values))
        self._distinct(hashes[valid])
        if len(values) == values.null_count:
            return
        try:
            bounds = pc.min_max(values)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            self.min = lo if self.min is None or lo < self.min else self.min
            self.max = hi if self.max is None or hi > self.max else self.max
        except (pa.ArrowNotImplementedError, TypeError):
            pass
        if self.numeric:
            floats = pc.drop_null(values.cast(pa.float64())).to_numpy()
            self._moments(floats)
            keys = row_keys[valid]
            merged_keys = np.concatenate([self.sample_keys, keys])
            merged = np.concatenate([self.sample, floats])
            if len(merged) > SAMPLE:
                keep = np.argpartition(merged_keys, SAMPLE)[:SAMPLE]
                merged_keys, merged = merged_keys[keep], merged[keep]
            self.sample_keys, self.sample = merged_keys, merged
        if not (pa.types.is_nested(self.dtype) or isinstance(self.dtype, pa.ExtensionType)):
            counts = pc.value_counts(pc.drop_null(values))
            table = pa.table({"v": counts.field("values"), "n": counts.field("counts")})
            if table.num_rows > TOP_CANDIDATES:  # only the batch's heavy hitters are merged
                heavy = pc.select_k_unstable(
                    table.column("n"), k=TOP_CANDIDATES, sort_keys=[("n", "descending")]
                )
                table = table.take(heavy)
            if self.top is not None:
                table = pa.concat_tables([self.top, table]).group_by("v").aggregate([("n", "sum")])
                table = table.rename_columns(["v", "n"])
            self.top = table.sort_by([("n", "descending")]).slice(0, TOP_CANDIDATES)

    def _moments(self, x: np.ndarray) -> None:
        if not len(x):
            return
        n_b, mean_b = len(x), float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def _distinct(self, hashes: np.ndarray) -> None:
        if self.hashes is not None:  # exact phase: fold in the batch's distinct hashes only
            hashes = pc.unique(pa.array(hashes)).to_numpy()
            merged = pa.array(np.concatenate([self.hashes, hashes]))
            self.hashes = pc.unique(merged).to_numpy()
            if len(self.hashes) > EXACT_DISTINCT:
                self.hashes = None
        if len(hashes):
            idx = (hashes >> np.uint64(64 - HLL_P)).astype(np.int64)
            rest = (hashes << np.uint64(HLL_P)) | np.uint64((1 << HLL_P) - 1)
            rank = (64 - np.floor(np.log2(rest.astype(np.float64))).astype(np.int64)).astype(
                np.uint8
            )
            np.maximum.at(self.registers, idx, rank)

    def distinct(self) -> tuple[int, bool]:
        """(distinct values, whether the figure is approximate)."""
        if self.hashes is not None:
            return len(self.hashes), False
        m = float(1 << HLL_P)
        alpha = 0.7213 / (1 + 1.079 / m)
        estimate = alpha * m * m / float(np.sum(2.0 ** -self.registers.astype(np.float64)))
        zeros = int(np.sum(self.registers == 0))
        if estimate <= 2.5 * m and zeros:
            estimate = m * np.log(m / zeros)
        return round(estimate), True

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly profile."""
        distinct, approximate = self.distinct()
        out: dict[str, Any] = {
            "type": str(self.dtype),
            "count": self.count,
            "nulls": self.nulls,
            "null_rate": round(self.nulls / self.count, 6) if self.count else 0.0,
            "distinct": distinct,
            "distinct_approximate": approximate,
            "min": _plain(self.min),
            "max": _plain(self.max),
        }
        if self.numeric and self.n:
            out["mean"] = self.mean
            out["stddev"] = float(np.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else 0.0
            counts, edges = np.histogram(self.sample, bins=BINS)
            scale = self.n / len(self.sample) if len(self.sample) else 1.0
            out["histogram"] = {
                "edges": [float(e) for e in edges],
                "counts": [round(float(c) * scale) for c in counts],
                "sampled": len(self.sample) < self.n,
            }
        if self.top is not None:
            top = self.top.slice(0, TOP).to_pylist()
            out["top"] = [[_plain(r["v"]), r["n"]] for r in top]
        return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class Profiler:
    """Profiles every column of a stream's output batches."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.columns: dict[str, ColumnProfile] = {}
        self.rows = 0

    def update(self, table: pa.Table) -> None:
        """Fold in one batch (DuckDB hashes all columns in one vectorized query)."""
        if table.num_rows == 0:
            return
        names = list(table.column_names)
        self.con.register("__agg_p", table)
        select = ", ".join(f'hash("{n.replace(chr(34), chr(34) * 2)}")' for n in names)
        hashed = self.con.sql(f"SELECT {select} FROM __agg_p").to_arrow_table()
        self.con.unregister("__agg_p")
        ordinals = np.arange(self.rows, self.rows + table.num_rows, dtype=np.uint64)
        row_keys = ordinals * _GOLDEN
        self.rows += table.num_rows
        for i, name in enumerate(names):
            column = table.column(name).combine_chunks()
            profile = self.columns.setdefault(name, ColumnProfile(column.type))
            hashes = hashed.column(i).combine_chunks().to_numpy(zero_copy_only=False)
            profile.update(column, hashes.astype(np.uint64), row_keys)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Profiles by column name."""
        return {name: p.to_json() for name, p in self.columns.items()}
