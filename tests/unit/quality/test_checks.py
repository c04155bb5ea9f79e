"""Row and stream checks, severities, spec errors, profile, anomalies, and the row invariant."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pyarrow as pa
import pytest
from hypothesis import given, settings

from aggregator.core.errors import ConfigError, RunError, SpecError
from aggregator.pipeline.spec import load_pipeline
from aggregator.quality.anomaly import robust_z
from tests.unit.transform.helpers import processor, run

pytestmark = pytest.mark.unit
D = {
    "id": [1, 2, 2, 4],
    "c": ["EUR", "USD", "XXX", None],
    "x": [5, -1, 50, 7],
    "e": ["a@b.io", "bad", "c@d.io", "e@f.io"],
}


@pytest.mark.parametrize(
    ("check", "bad_rows", "reason"),
    [
        ({"check": "not_null", "columns": ["c"]}, [3], "c null in c"),
        ({"check": "unique", "columns": ["id"]}, [2], "id duplicate of (id)"),
        (
            {"check": "accepted_values", "column": "c", "values": ["EUR", "USD"]},
            [2],
            "c not in ['EUR', 'USD'] (value 'XXX')",
        ),
        (
            {"check": "range", "column": "x", "min": 0, "max": 10},
            [1, 2],
            "x outside [0, 10] (value -1)",
        ),
        (
            {"check": "regex", "column": "e", "pattern": "[^@]+@[^@]+"},
            [1],
            "e does not match '[^@]+@[^@]+' (value 'bad')",
        ),
        (
            {"check": "length", "column": "e", "min": 4},
            [1],
            "e length outside [4, None] (value 'bad')",
        ),
        (
            {"check": "type", "column": "c", "type": "int64"},
            [0, 1, 2],
            "c not of type int64 (value 'EUR')",
        ),
        ({"check": "sql", "expr": "x < id * 10"}, [2], "id,c,x,e"),
    ],
)
def test_row_checks_quarantine(check: dict[str, Any], bad_rows: list[int], reason: str) -> None:
    rows, rejected = run(D, checks=[check])
    assert sorted(rejected) == bad_rows
    assert len(rows) == 4 - len(bad_rows)
    if check["check"] != "sql":
        assert rejected[bad_rows[0]] == f"stream 's': checks[0] ({check['check']}): {reason}"


def test_unique_across_batches() -> None:
    p = processor(checks=[{"check": "unique", "columns": ["id"]}])
    assert p.process(pa.record_batch({"id": [1, 2]})).rejected == {}
    assert list(p.process(pa.record_batch({"id": [2, 3]})).rejected) == [0]


def test_referential_against_file(tmp_path: Path) -> None:
    ref = tmp_path / "cur.csv"
    ref.write_text("code\nEUR\nUSD\n")
    rows, rejected = run(
        D, checks=[{"check": "referential", "column": "c", "file": str(ref), "ref_column": "code"}]
    )
    assert sorted(rejected) == [2] and len(rows) == 3


def test_severity_warn_and_fail() -> None:
    p = processor(checks=[{"check": "range", "column": "x", "max": 10, "severity": "warn"}])
    out = p.process(pa.record_batch(D))
    assert out.batch.num_rows == 4 and out.rejected == {}
    assert p.row_checks[0].result.failed == 1 and p.row_checks[0].result.samples == [50]
    with pytest.raises(RunError, match="severity fail"):
        run(D, checks=[{"check": "range", "column": "x", "max": 10, "severity": "fail"}])


def test_missing_check_column_is_config_error_before_data() -> None:
    with pytest.raises(ConfigError, match=r"checks\[0\] \(not_null\): unknown column 'nope'"):
        run(D, checks=[{"check": "not_null", "columns": ["nope"]}])


def test_stream_checks_at_finish() -> None:
    p = processor(
        checks=[
            {"check": "row_count", "min": 10},
            {"check": "null_rate", "column": "c", "max": 0.5, "severity": "warn"},
            {"check": "distinct_ratio", "column": "id", "min": 0.5},
        ]
    )
    p.process(pa.record_batch(D))
    with pytest.raises(RunError, match=r"row_count = 4, expected \[10, None\]"):
        p.finish()


def test_freshness_and_distinct_ratio() -> None:
    now = dt.datetime.now(dt.UTC)
    batch = pa.record_batch({"at": [now - dt.timedelta(hours=5), now - dt.timedelta(minutes=1)]})
    p = processor(checks=[{"check": "freshness", "column": "at", "max_age_seconds": 600}])
    p.process(batch)
    p.finish()
    assert p.results[0].status == "passed" and p.results[0].detail.startswith("freshness = ")
    p = processor(checks=[{"check": "freshness", "column": "at", "max_age_seconds": 10}])
    p.process(batch.slice(0, 1))
    with pytest.raises(RunError, match="freshness"):
        p.finish()
    p = processor(
        checks=[{"check": "distinct_ratio", "column": "k", "min": 0.9, "severity": "warn"}]
    )
    p.process(pa.record_batch({"k": [1, 1, 2, None]}))
    p.finish()
    assert (p.results[0].status, p.results[0].detail) == (
        "warned",
        "distinct_ratio = 0.6667, expected [0.9, None]",
    )


def test_profile() -> None:
    p = processor(profile=True)
    p.process(pa.record_batch({"x": [1, 2, None]}))
    p.process(pa.record_batch({"x": [3, 3, 3]}))
    prof = p.profiler.to_json()["x"]  # type: ignore[union-attr]
    assert (prof["count"], prof["nulls"], prof["distinct"], prof["min"], prof["max"]) == (
        6,
        1,
        3,
        1,
        3,
    )
    assert prof["mean"] == 2.4 and prof["top"][0] == [3, 3]
    assert round(prof["stddev"], 6) == 0.894427 and sum(prof["histogram"]["counts"]) == 5


def test_robust_z() -> None:
    assert robust_z(100, [10, 11, 9, 10, 10]) > 3.5
    assert robust_z(10, [10, 10, 10]) == 0.0


def test_spec_errors_name_file_line_step_and_position(tmp_path: Path) -> None:
    f = tmp_path / "p.yml"
    f.write_text(
        "name: p\nsources:\n  - name: s\n    type: files\n    streams:\n      - name: o\n"
        "        transforms:\n          - {step: derive, column: y, expr: 'a * (1 +'}\n"
        "          - {step: cast, columns: {a: intt}}\n"
        "          - {step: derivee}\n"
        "        checks:\n          - {check: not_null, column: [a]}\n"
    )
    with pytest.raises(SpecError) as err:
        load_pipeline(f)
    text = "\n".join(err.value.problems)
    assert (
        "p.yml:9: sources.0.streams.0.transforms.1.cast.columns: "
        "Value error, column 'a': unknown type 'intt'" in text
    )
    assert "sources.0.streams.0.transforms.2: Input tag 'derivee' found using 'step'" in text
    assert "p.yml:12: sources.0.streams.0.checks.0.not_null.column: unknown key 'column'" in text
    f.write_text(f.read_text().split("          - {step: cast")[0])
    with pytest.raises(SpecError) as err:
        load_pipeline(f)
    assert any(
        ":8: sources.0.streams.0.transforms.0.expr: stream 'o': transforms[0] (derive): "
        "syntax error at line 1, column 8 of 'a * (1 +'" in p
        for p in err.value.problems
    )


RULES = st.lists(
    st.sampled_from(
        [
            {"step": "cast", "columns": {"t": "int64"}},
            {"step": "filter", "where": "v % 3 <> 0"},
            {"step": "deduplicate", "key": ["v"]},
            {"step": "derive", "column": "w", "expr": "v * 2"},
            {"step": "case", "columns": ["u"], "to": "upper"},
        ]
    ),
    max_size=4,
)
CHECKS = st.lists(
    st.sampled_from(
        [
            {"check": "range", "column": "v", "min": 0},
            {"check": "not_null", "columns": ["v"]},
            {"check": "unique", "columns": ["v"]},
            {"check": "accepted_values", "column": "v", "values": [1, 2, 3, 4, 5]},
        ]
    ),
    max_size=3,
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-5, 8)), st.sampled_from(["1", " 2", "x", None])
        ),
        max_size=30,
    ),
    RULES,
    CHECKS,
)
def test_quarantined_plus_loaded_equals_read(
    data: list[tuple[int | None, str | None]],
    steps: list[dict[str, Any]],
    checks: list[dict[str, Any]],
) -> None:
    batch = pa.record_batch(
        {
            "v": pa.array([d[0] for d in data], pa.int64()),
            "t": pa.array([d[1] for d in data], pa.string()),
            "u": pa.array([d[1] for d in data], pa.string()),
        }
    )
    out = processor(steps, checks).process(batch)
    assert out.batch.num_rows + len(out.rejected) == batch.num_rows
    assert all(0 <= r < batch.num_rows for r in out.rejected)
