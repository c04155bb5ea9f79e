"""``Validator``: the row checks outside a pipeline, with their whole-column shortcuts
(null counts, bounds, byte lengths, one regex per distinct value) giving exact outcomes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from aggregator.core.errors import ConfigError, RunError
from aggregator.quality.validate import Validator
from aggregator.transform.seen import SortedRuns

pytestmark = pytest.mark.unit
CHECKS = [
    {"check": "not_null", "columns": ["id"]},
    {"check": "unique", "columns": ["id"]},
    {"check": "range", "column": "id", "min": 1, "max": 100},
    {"check": "length", "column": "name", "max": 4},
    {"check": "regex", "column": "name", "pattern": "[a-zé]*"},
    {"check": "type", "column": "id", "type": "int64", "severity": "warn"},
    {"check": "row_count", "min": 1, "max": 10},
]


def test_exact_rejections_over_batches() -> None:
    v = Validator(CHECKS, "people")
    first = v.validate(pa.table({"id": [1, 2, 3], "name": ["ann", "ann", "ann"]}))
    assert first.rejected == {} and first.table.num_rows == 3
    second = v.validate(
        pa.table({"id": [4, 2, None, 200, 6], "name": ["éééé", "bob", "cy", "dee", "Eve"]})
    )
    assert second.rejected == {
        1: "stream 'people': checks[1] (unique): id duplicate of (id)",
        2: "stream 'people': checks[0] (not_null): id null in id",
        3: "stream 'people': checks[2] (range): id outside [1, 100] (value 200)",
        4: "stream 'people': checks[4] (regex): name does not match '[a-zé]*' (value 'Eve')",
    }
    assert second.table.column("id").to_pylist() == [4]  # 4 characters in 8 bytes: fits
    third = v.validate(pa.table({"id": [7, 8], "name": ["toolong", "ok"]}))
    assert third.rejected == {
        0: "stream 'people': checks[3] (length): name length outside [None, 4] (value 'toolong')"
    }
    results = {r.kind: (r.checked, r.failed) for r in v.finish()}
    assert results == {
        "not_null": (10, 1),
        "unique": (9, 1),
        "range": (8, 1),
        "length": (7, 1),
        "regex": (6, 1),
        "type": (5, 0),
        "row_count": (1, 0),  # rows out: 3 + 1 + 1 = 5
    }


def test_regex_over_distinct_values_gives_the_same_rows_as_per_row() -> None:
    repeated = pa.table({"s": ["ok", "ok", "NO", "ok"] * 3})
    distinct = pa.table({"s": [f"v{i}" for i in range(11)] + ["X"]})
    v = Validator([{"check": "regex", "column": "s", "pattern": "[a-z0-9]+"}])
    assert sorted(v.validate(repeated).rejected) == [2, 6, 10]
    assert sorted(v.validate(distinct).rejected) == [11]  # now row by row
    assert sorted(v.validate(repeated).rejected) == [2, 6, 10]


def test_fail_severity_and_bad_config() -> None:
    v = Validator([{"check": "range", "column": "x", "max": 5, "severity": "fail"}])
    with pytest.raises(RunError, match=r"x outside \[None, 5\] \(value 9\); 1 row\(s\) fail"):
        v.validate(pa.table({"x": [1, 9]}))
    with pytest.raises(ConfigError, match="unknown column 'y'; columns: x"):
        Validator([{"check": "not_null", "columns": ["y"]}]).validate(pa.table({"x": [1]}))
    with pytest.raises(ConfigError, match="stream 'data': checks:"):
        Validator([{"check": "range", "column": "x", "maximum": 5}])


def test_sorted_runs_with_increasing_then_overlapping_keys() -> None:
    runs = SortedRuns()
    yes = np.ones(3, bool)
    for keys in ([1, 2, 3], [4, 5, 6], [10, 11, 12]):
        runs.add(np.array(keys, np.int64), yes)
    assert len(runs.runs) == 3  # increasing keys: no merging
    probe = np.array([0, 3, 5, 7, 12], np.int64)
    found = runs.contains(probe, np.ones(5, bool))
    assert found.tolist() == [False, True, True, False, True]
    runs.add(np.array([9, 2, 20], np.int64), yes)
    assert runs.contains(np.array([9, 20, 8], np.int64), np.ones(3, bool)).tolist() == [
        True,
        True,
        False,
    ]
