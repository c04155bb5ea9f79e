"""Keys a deduplicate step has kept in earlier batches, probed per batch without rescans."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def integer_like(dtype: pa.DataType) -> bool:
    """Whether values map exactly onto int64 (integers, dates, times, timestamps, durations)."""
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_time(dtype)
        or pa.types.is_timestamp(dtype)
        or pa.types.is_duration(dtype)
    )


def as_int64(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values with nulls as 0, validity) of an integer-like column."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    width = array.type.bit_width
    raw = array.view({8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[width])
    valid = np.asarray(pc.is_valid(raw))
    numbers = pc.fill_null(raw, 0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return numbers, valid


class SortedRuns:
    """A set of int64 keys kept as sorted runs of geometric sizes (a log-structured merge).

    Probing ``b`` keys costs ``O(b log n)`` per run and there are ``O(log n)`` runs; each key
    is merged ``O(log n)`` times in total. A scan of every key seen so far per batch (which
    makes a run quadratic in its length) is avoided.
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self.null_seen = False

    def contains(self, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Which keys were added before (a null matches an earlier null)."""
        found = np.zeros(len(keys), dtype=bool)
        present = keys if valid.all() else keys[valid]
        low, high = (present.min(), present.max()) if len(present) else (0, -1)
        for run in self.runs:
            if run[-1] < low or run[0] > high:  # no overlap (e.g. increasing keys)
                continue
            at = np.searchsorted(run, keys)
            np.minimum(at, len(run) - 1, out=at)
            found |= run[at] == keys
        found &= valid
        if self.null_seen:
            found |= ~valid
        return found

    def add(self, keys: np.ndarray, valid: np.ndarray) -> None:
        """Remember keys (not necessarily unique or sorted)."""
        self.null_seen = self.null_seen or not bool(valid.all())
        run = keys if valid.all() else keys[valid]
        if not len(run):
            return
        if not _increasing(run):
            run = np.sort(run)
        # merge with smaller runs it overlaps; runs above all others (increasing keys) stay
        # apart, as probes skip runs by their bounds
        while self.runs and len(self.runs[-1]) <= len(run) and self.runs[-1][-1] >= run[0]:
            run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")
        self.runs.append(run)


def first_mask(numbers: np.ndarray, valid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mask of the first row per key, visiting rows in the order ``rows`` (nulls are one key)."""
    mask = np.zeros(len(numbers), dtype=bool)
    rows_valid = rows[valid[rows]]
    keys = numbers[rows_valid]
    if _increasing(keys, strictly=True):  # all distinct (e.g. a sorted key): no sort
        mask[rows_valid] = True
    else:
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        mask[rows_valid[order[first]]] = True
    nulls = rows[~valid[rows]]
    if len(nulls):
        mask[nulls[0]] = True
    return mask


def _increasing(values: np.ndarray, strictly: bool = False) -> bool:
    """Whether ``values`` are sorted (one vectorized pass)."""
    if len(values) < 2:
        return True
    step = values[1:] > values[:-1] if strictly else values[1:] >= values[:-1]
    return bool(step.all())


def arrival_order(origins: np.ndarray) -> np.ndarray:
    """Row indices in the order of their origins (no sort when they already are)."""
    if _increasing(origins):
        return np.arange(len(origins))
    return np.argsort(origins, kind="stable")
