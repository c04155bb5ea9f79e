"""Column profiles computed incrementally over Arrow batches.

Batches are buffered into chunks (``CHUNK_ROWS`` rows or ``CHUNK_BYTES``) and each chunk is
profiled by a few DuckDB aggregate queries covering every column at once, so the cost per
row is vectorized C++ and the per-query overhead is paid per chunk, not per batch:

- exact: count, nulls, min, max, mean and stddev (merged across chunks with Chan's formula);
- distinct: exact up to ``EXACT_DISTINCT`` values (a set of 64-bit hashes), then a
  HyperLogLog estimate (``2**HLL_P`` registers, updated by one ``GROUP BY`` per chunk);
- top values: the ``TOP_CANDIDATES`` most frequent values of each chunk, merged with the
  candidates so far (exact when a column has fewer distinct values than that);
- histogram: equal-width bins over a bottom-k sample of ``SAMPLE`` rows (by a hash of the
  row's ordinal, so it is uniform and independent of the values).
"""

from __future__ import annotations

from contextlib import suppress
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
CHUNK_ROWS = 1_000_000
CHUNK_BYTES = 64 << 20
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_VIEW = "__agg_profile"
_LOW_BITS = (1 << (64 - HLL_P)) - 1
_BEYOND_EXACT = EXACT_DISTINCT * 11 // 10  # DuckDB's approx_count_distinct errs by ~2%


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _simple(dtype: pa.DataType) -> bool:
    """Whether min/max and top values apply (not nested, not an extension type)."""
    return not (pa.types.is_nested(dtype) or isinstance(dtype, pa.ExtensionType))


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
        self.top_sampled = False  # candidates came from a sample (most values distinct)
        self.sample = np.empty(0, np.float64)
        self.sample_keys = np.empty(0, np.uint64)

    @property
    def numeric(self) -> bool:
        """Whether mean, stddev and histogram apply."""
        t = self.dtype
        return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))

    def add_bounds(self, lo: Any, hi: Any) -> None:
        """Fold in a chunk's minimum and maximum."""
        if lo is None:
            return
        try:
            self.min = lo if self.min is None or lo < self.min else self.min
            self.max = hi if self.max is None or hi > self.max else self.max
        except TypeError:  # a type change between chunks: keep the newest bounds
            self.min, self.max = lo, hi

    def add_moments(self, n_b: int, mean_b: float | None, var_b: float | None) -> None:
        """Fold in a chunk's count, mean and population variance (Chan et al.)."""
        if not n_b or mean_b is None:
            return
        m2_b = float(var_b or 0.0) * n_b
        n = self.n + n_b
        delta = float(mean_b) - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Fold in a chunk's distinct value hashes (exact phase only)."""
        if self.hashes is None:
            return
        self.hashes = np.union1d(self.hashes, hashes)
        if len(self.hashes) > EXACT_DISTINCT:
            self.estimate()

    def estimate(self) -> None:
        """Switch to the HyperLogLog estimate: the hashes so far go into the registers."""
        if self.hashes is None:
            return
        h = self.hashes.astype(np.uint64)
        low = h & np.uint64(_LOW_BITS)
        safe = np.maximum(low, np.uint64(1)).astype(np.float64)
        rank = np.where(low == 0, 65 - HLL_P, (64 - HLL_P) - np.floor(np.log2(safe)))
        np.maximum.at(
            self.registers, (h >> np.uint64(64 - HLL_P)).astype(np.intp), rank.astype(np.uint8)
        )
        self.hashes = None

    def add_top(self, counts: pa.Table) -> None:
        """Fold in a chunk's most frequent values (columns ``v``, ``n``)."""
        if self.top is not None and self.top.schema == counts.schema:
            counts = pa.concat_tables([self.top, counts])
            counts = counts.group_by("v", use_threads=False).aggregate([("n", "sum")])
            counts = counts.rename_columns(["v", "n"])
        self.top = counts.sort_by([("n", "descending"), ("v", "ascending")]).slice(
            0, TOP_CANDIDATES
        )

    def add_sample(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Keep the ``SAMPLE`` rows with the smallest keys of the sample and ``values``."""
        merged_keys = np.concatenate([self.sample_keys, keys])
        merged = np.concatenate([self.sample, values])
        if len(merged) > SAMPLE:
            keep = np.argpartition(merged_keys, SAMPLE)[:SAMPLE]
            merged_keys, merged = merged_keys[keep], merged[keep]
        self.sample_keys, self.sample = merged_keys, merged

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
            out["top_sampled"] = self.top_sampled
        return out


class Profiler:
    """Profiles every column of a stream's output batches."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.columns: dict[str, ColumnProfile] = {}
        self.rows = 0  # rows profiled so far (buffered rows included)
        self._done = 0  # rows of the chunks already profiled
        self._buffer: list[pa.Table] = []
        self._buffered_bytes = 0

    def update(self, table: pa.Table) -> None:
        """Add one batch (profiled when its chunk is full, or by :meth:`to_json`)."""
        if table.num_rows == 0:
            return
        if self._buffer and self._buffer[0].schema != table.schema:
            self._flush()
        self._buffer.append(table)
        self._buffered_bytes += table.nbytes
        self.rows += table.num_rows
        if self.rows - self._done >= CHUNK_ROWS or self._buffered_bytes >= CHUNK_BYTES:
            self._flush()

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Profiles by column name."""
        self._flush()
        return {name: p.to_json() for name, p in self.columns.items()}

    def _flush(self) -> None:
        if not self._buffer:
            return
        chunk = pa.concat_tables(self._buffer)
        self._buffer, self._buffered_bytes = [], 0
        profiles = []
        for field in chunk.schema:
            profile = self.columns.get(field.name)
            if profile is None or pa.types.is_null(profile.dtype):
                profile = self.columns[field.name] = _retyped(profile, field.type)
            profiles.append(profile)
        keys = np.arange(self._done, self._done + chunk.num_rows, dtype=np.uint64) * _GOLDEN
        rows = np.arange(chunk.num_rows)
        if chunk.num_rows > SAMPLE:
            rows = np.argpartition(keys, SAMPLE)[:SAMPLE]
        self.con.register(_VIEW, chunk)
        try:
            spread = self._aggregates(chunk, profiles)
            self._registers(chunk, profiles)
            self._exact(chunk, profiles)
            self._tops(chunk, profiles, spread, pa.array(rows))
        finally:
            self.con.unregister(_VIEW)
        self._samples(chunk, profiles, keys[rows], pa.array(rows))
        self._done += chunk.num_rows

    def _aggregates(self, chunk: pa.Table, profiles: list[ColumnProfile]) -> list[bool]:
        """Counts, bounds, moments and approximate distinct counts of every column in one
        query; returns, per column, whether most of its values in the chunk are distinct."""
        items: list[tuple[str, str]] = []
        for i, (name, p) in enumerate(zip(chunk.column_names, profiles, strict=True)):
            q = _quote(name)
            items += [(f"count({q})", f"c{i}"), (f"approx_count_distinct({q})", f"d{i}")]
            if _simple(p.dtype) and not pa.types.is_null(p.dtype):
                items += [(f"min({q})", f"lo{i}"), (f"max({q})", f"hi{i}")]
            if p.numeric:
                items += [(f"avg({q}::DOUBLE)", f"m{i}"), (f"var_pop({q}::DOUBLE)", f"v{i}")]
        select = ", ".join(f"{expr} AS {alias}" for expr, alias in items)
        row = self.con.sql(f"SELECT {select} FROM {_VIEW}").fetchall()[0]
        found = dict(zip([alias for _, alias in items], row, strict=True))
        spread = []
        for i, p in enumerate(profiles):
            valid, distinct = int(found[f"c{i}"]), int(found[f"d{i}"])
            p.count += chunk.num_rows
            p.nulls += chunk.num_rows - valid
            p.add_bounds(found.get(f"lo{i}"), found.get(f"hi{i}"))
            if p.numeric:
                p.add_moments(valid, found[f"m{i}"], found[f"v{i}"])
            if p.hashes is not None and len(p.hashes) + distinct > _BEYOND_EXACT:
                p.estimate()  # clearly too many values to count exactly
            spread.append(distinct > max(10 * TOP_CANDIDATES, valid // 2))
        return spread

    def _registers(self, chunk: pa.Table, profiles: list[ColumnProfile]) -> None:
        """HyperLogLog registers of the columns counted approximately: one ``GROUP BY``."""
        wanted = [i for i, p in enumerate(profiles) if p.hashes is None]
        if not wanted:
            return
        parts = [
            f"SELECT {i} AS col, hash({_quote(chunk.column_names[i])}) AS h FROM {_VIEW} "
            f"WHERE {_quote(chunk.column_names[i])} IS NOT NULL"
            for i in wanted
        ]
        low = f"(h & {_LOW_BITS})"
        rank = (
            f"CASE WHEN {low} = 0 THEN {65 - HLL_P} "
            f"ELSE {64 - HLL_P} - floor(log2({low}::DOUBLE)) END"
        )
        sql = (
            f"SELECT col, (h >> {64 - HLL_P})::INTEGER AS reg, max({rank})::UTINYINT AS rank "
            f"FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL"
        )
        found = self.con.sql(sql).to_arrow_table()
        cols = found.column("col").to_numpy()
        regs = found.column("reg").to_numpy()
        ranks = found.column("rank").to_numpy()
        for i in wanted:
            mine = cols == i
            idx = regs[mine]
            registers = profiles[i].registers
            registers[idx] = np.maximum(registers[idx], ranks[mine])

    def _exact(self, chunk: pa.Table, profiles: list[ColumnProfile]) -> None:
        """Distinct value hashes of the columns still counted exactly whose values have no
        top (nested types; the others get theirs from :meth:`_tops`): one query."""
        exact = [i for i, p in enumerate(profiles) if p.hashes is not None and not _topped(p.dtype)]
        if not exact:
            return
        parts = [
            f"SELECT DISTINCT {i} AS col, hash({_quote(chunk.column_names[i])}) AS h "
            f"FROM {_VIEW} WHERE {_quote(chunk.column_names[i])} IS NOT NULL"
            for i in exact
        ]
        found = self.con.sql(" UNION ALL ".join(parts)).to_arrow_table()
        cols = found.column("col").to_numpy()
        hashes = found.column("h").to_numpy()
        for i in exact:
            profiles[i].add_hashes(hashes[cols == i])

    def _tops(
        self, chunk: pa.Table, profiles: list[ColumnProfile], spread: list[bool], rows: pa.Array
    ) -> None:
        """The most frequent values of each column in the chunk, one query per column: for a
        column still counted exactly, every value with its count and hash (its distinct
        hashes too); where most values are distinct, exact counts of the sampled rows'
        values; else the counts of the most frequent values."""
        for i, (name, p) in enumerate(zip(chunk.column_names, profiles, strict=True)):
            if not _topped(p.dtype):
                continue
            q = _quote(name)
            exact = p.hashes is not None
            where, tail, extra = (
                f"{q} IS NOT NULL",
                f" ORDER BY n DESC, v LIMIT {TOP_CANDIDATES}",
                "",
            )
            if exact:
                tail, extra = "", f", hash({q}) AS h"
            elif spread[i]:  # candidates: the sample's values, most frequent first
                sampled = pc.value_counts(pc.drop_null(pc.take(chunk.column(i), rows)))
                order = pc.array_sort_indices(sampled.field("counts"), order="descending")
                values = pc.take(sampled.field("values"), order)[:TOP_CANDIDATES]
                self.con.register("__agg_candidates", pa.table({"v": values}))
                where = f"{q} IN (SELECT v FROM __agg_candidates)"
                p.top_sampled = True
            try:
                counts = self.con.sql(
                    f"SELECT {q} AS v, count(*) AS n{extra} FROM {_VIEW} WHERE {where} "
                    f"GROUP BY {q}{tail}"
                ).to_arrow_table()
            finally:
                if spread[i] and not exact:
                    self.con.unregister("__agg_candidates")
            if exact:
                p.add_hashes(counts.column("h").to_numpy())
                counts = counts.drop_columns(["h"])
                if counts.num_rows > TOP_CANDIDATES:
                    heavy = pc.select_k_unstable(
                        counts, k=TOP_CANDIDATES, sort_keys=[("n", "descending")]
                    )
                    counts = counts.take(heavy)
            wanted = pa.schema([pa.field("v", p.dtype), pa.field("n", pa.int64())])
            # else DuckDB's type for the values (their counts are still right)
            with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                counts = counts.cast(wanted)
            p.add_top(counts)

    def _samples(
        self, chunk: pa.Table, profiles: list[ColumnProfile], keys: np.ndarray, rows: pa.Array
    ) -> None:
        """Fold the sampled rows (``rows``, with their ``keys``) into the numeric columns'
        samples, for the histograms."""
        for i, p in enumerate(profiles):
            if not p.numeric:
                continue
            values = pc.take(chunk.column(i), rows).cast(pa.float64())
            valid = np.asarray(pc.is_valid(values))
            floats = values.to_numpy(zero_copy_only=False)[valid]
            p.add_sample(keys[valid], floats.astype(np.float64))


def _topped(dtype: pa.DataType) -> bool:
    """Whether a column gets top values (and its exact distinct count from them)."""
    return _simple(dtype) and not pa.types.is_null(dtype)


def _retyped(old: ColumnProfile | None, dtype: pa.DataType) -> ColumnProfile:
    """A profile for a new column, or one whose only values so far were nulls."""
    new = ColumnProfile(dtype)
    if old is not None:
        new.count, new.nulls = old.count, old.nulls
    return new
