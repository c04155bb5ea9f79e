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
        for run in self.runs:
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
        run = np.sort(keys[valid])
        while self.runs and len(self.runs[-1]) <= len(run):
            run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")
        if len(run):
            self.runs.append(run)


def first_mask(numbers: np.ndarray, valid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mask of the first row per key, visiting rows in the order ``rows`` (nulls are one key)."""
    mask = np.zeros(len(numbers), dtype=bool)
    rows_valid = rows[valid[rows]]
    _, first = np.unique(numbers[rows_valid], return_index=True)
    mask[rows_valid[first]] = True
    nulls = rows[~valid[rows]]
    if len(nulls):
        mask[nulls[0]] = True
    return mask
