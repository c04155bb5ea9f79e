"""Column profiles over many batches and chunks: exact figures where they are promised,
estimates within their error where they are not."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from aggregator.quality import profile as profile_module
from aggregator.quality.profile import Profiler

pytestmark = pytest.mark.unit
ROWS = 240_000


@pytest.fixture
def profiler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Profiler]:
    monkeypatch.setattr(profile_module, "CHUNK_ROWS", 50_000)  # several chunks to merge
    with duckdb.connect() as con:
        yield Profiler(con)


def _feed(profiler: Profiler, table: pa.Table, batch: int = 7_000) -> dict[str, dict]:  # type: ignore[type-arg]
    for offset in range(0, table.num_rows, batch):
        profiler.update(table.slice(offset, batch))
    return profiler.to_json()


def test_exact_figures_merge_across_chunks(profiler: Profiler) -> None:
    i = np.arange(ROWS)
    x = pa.array(i % 1000, pa.int64(), mask=(i % 10 == 3))  # every 10th row null
    amount = pa.array([Decimal(v % 7) / 4 for v in range(ROWS)], pa.decimal128(10, 2))
    table = pa.table({"x": x, "s": pa.array([f"k{v % 3}" for v in range(ROWS)]), "a": amount})
    got = _feed(profiler, table)
    valid = (i % 1000)[i % 10 != 3].astype(np.float64)
    px = got["x"]
    assert (px["count"], px["nulls"], px["distinct"], px["distinct_approximate"]) == (
        ROWS,
        ROWS // 10,
        900,  # x = 3, 13, ..., 993 only on null rows
        False,
    )
    assert (px["min"], px["max"]) == (0, 999)
    assert px["mean"] == pytest.approx(valid.mean(), rel=1e-12)
    assert px["stddev"] == pytest.approx(valid.std(ddof=1), rel=1e-9)
    assert px["top"][0] == [0, 240] and px["top_sampled"] is False
    assert sum(px["histogram"]["counts"]) == pytest.approx(len(valid), rel=0.01)
    assert px["histogram"]["edges"][0] >= 0 and px["histogram"]["edges"][-1] <= 999
    ps = got["s"]
    assert ps["top"] == [["k0", 80_000], ["k1", 80_000], ["k2", 80_000]]
    assert (ps["distinct"], ps["min"], ps["max"]) == (3, "k0", "k2")
    pa_ = got["a"]
    assert (pa_["min"], pa_["max"], pa_["distinct"]) == ("0.00", "1.50", 7)


def test_high_cardinality_is_estimated_and_heavy_hitters_found(profiler: Profiler) -> None:
    i = np.arange(ROWS)
    ids = np.where(i % 4 == 0, -1, i)  # a quarter of the rows are -1, the rest distinct
    got = _feed(profiler, pa.table({"id": pa.array(ids, pa.int64())}))["id"]
    true_distinct = ROWS - ROWS // 4 + 1
    assert got["distinct_approximate"] is True
    assert abs(got["distinct"] - true_distinct) / true_distinct < 0.03  # HLL, 2**14 registers
    assert got["top"][0] == [-1, ROWS // 4]  # counted exactly, found through the sample
    assert got["top_sampled"] is True
    assert (got["min"], got["max"], got["count"], got["nulls"]) == (-1, ROWS - 1, ROWS, 0)


def test_a_column_first_null_then_typed(profiler: Profiler) -> None:
    profiler.update(pa.table({"v": pa.nulls(3)}))
    profiler.update(pa.table({"v": pa.array([5, 7], pa.int32())}))
    got = profiler.to_json()["v"]
    assert (got["type"], got["count"], got["nulls"], got["distinct"]) == ("int32", 5, 3, 2)
    assert (got["min"], got["max"], got["mean"]) == (5, 7, 6.0)
