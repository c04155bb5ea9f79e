"""Fused expression steps, the integer-key deduplicate and the ASCII mask give exactly the
results (rows, order, rejection reasons) of the step-by-step implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from aggregator.core.errors import ConfigError, RunError
from aggregator.transform import plan
from aggregator.transform.cleanse import mask_ascii
from aggregator.transform.fuse import Fused
from tests.unit.transform.helpers import processor

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "ref.csv"
    path.write_text("code,code2,label\n1,2,one\n2,4,two\n4,8,four\n")
    return path


def unfused(
    monkeypatch: pytest.MonkeyPatch, steps: list[dict[str, Any]], batches: list[pa.RecordBatch]
) -> list[tuple[list[dict[str, Any]], dict[int, str]]]:
    with monkeypatch.context() as m:
        m.setattr(plan, "fuse", lambda built, fallback: built)
        p = processor(steps)
    assert not any(isinstance(s, Fused) for s in p.steps)
    return [(out.batch.to_pylist(), out.rejected) for out in map(p.process, batches)]


def fused(
    steps: list[dict[str, Any]], batches: list[pa.RecordBatch]
) -> list[tuple[list[dict[str, Any]], dict[int, str]]]:
    p = processor(steps)
    return [(out.batch.to_pylist(), out.rejected) for out in map(p.process, batches)]


def test_groups_hold_consecutive_expression_steps_and_one_filter(ref: Path) -> None:
    on = {"a": "code", "b": "code2"}  # a lookup on one key is an Arrow hash lookup, not fused
    lookup = {"step": "lookup", "file": str(ref), "on": on, "columns": ["label"]}
    p = processor(
        [
            {"step": "derive", "column": "b", "expr": "a * 2"},
            {"step": "filter", "where": "a > 0"},
            lookup,
            {"step": "filter", "where": "b > 0"},
            {"step": "trim", "columns": ["label"]},
            {"step": "derive", "column": "c", "expr": "b * 2"},
        ]
    )
    kinds = [
        [m.cfg.step for m in s.members] if isinstance(s, Fused) else s.cfg.step for s in p.steps
    ]
    assert kinds == [["derive", "filter", "lookup"], "filter", "trim", "derive"]
    out = p.process(pa.record_batch({"a": [2, -1, 4, 3]}))
    assert out.batch.to_pylist() == [
        {"a": 2, "b": 4, "label": "two", "c": 8},
        {"a": 4, "b": 8, "label": "four", "c": 16},
        {"a": 3, "b": 6, "label": None, "c": 12},
    ]
    assert out.rejected == {1: "stream 's': transforms[1] (filter): predicate 'a > 0' is not true"}


def test_failing_row_in_fused_group_is_attributed_to_its_step(ref: Path) -> None:
    steps = [
        {"step": "derive", "column": "i", "expr": "CAST(t AS INTEGER)"},
        {"step": "derive", "column": "i2", "expr": "i * 2"},
        {
            "step": "lookup",
            "file": str(ref),
            "on": {"i": "code", "i2": "code2"},
            "columns": ["label"],
            "on_missing": "quarantine",
        },
        {"step": "derive", "column": "j", "expr": "i * 10"},
    ]
    p = processor(steps)
    assert [len(s.members) for s in p.steps if isinstance(s, Fused)] == [4]
    rows, rejected = fused(steps, [pa.record_batch({"t": ["1", "zz", "3", "2"]})])[0]
    assert rows == [
        {"t": "1", "i": 1, "i2": 2, "label": "one", "j": 10},
        {"t": "2", "i": 2, "i2": 4, "label": "two", "j": 20},
    ]
    assert rejected[1].startswith("stream 's': transforms[0] (derive): Conversion Error")
    assert rejected[2] == "stream 's': transforms[2] (lookup): no match for i=3, i2=6"


def test_fused_lookup_on_missing_fail_fails_the_run(ref: Path) -> None:
    on = {"k": "code", "k2": "code2"}
    steps = [
        {"step": "derive", "column": "k", "expr": "a"},
        {"step": "derive", "column": "k2", "expr": "a * 2"},
        {"step": "lookup", "file": str(ref), "on": on, "columns": ["label"], "on_missing": "fail"},
    ]
    with pytest.raises(RunError, match=r"transforms\[2\] \(lookup\): no match for k=9, k2=18"):
        fused(steps, [pa.record_batch({"a": [1, 9]})])


def test_unknown_column_in_fused_group_names_its_step() -> None:
    steps = [
        {"step": "derive", "column": "b", "expr": "a + 1"},
        {"step": "filter", "where": "b > 0 AND z < 1"},
    ]
    with pytest.raises(ConfigError, match=r"transforms\[1\] \(filter\): unknown column 'z' at"):
        fused(steps, [pa.record_batch({"a": [1]})])


EXPRESSIONS = st.sampled_from(
    [
        {"step": "derive", "column": "w", "expr": "v * 2"},
        {"step": "derive", "column": "v", "expr": "v + 1"},
        {"step": "derive", "column": "n", "expr": "CAST(t AS INTEGER)"},
        {"step": "derive", "column": "t", "expr": "upper(t)"},
        {"step": "filter", "where": "v % 3 <> 0"},
        {"step": "filter", "where": "t IS NOT NULL", "on_drop": "drop"},
        {"step": "lookup", "on": {"v": "code"}, "columns": ["label"]},
        {"step": "lookup", "on": {"v": "code", "w": "code2"}, "columns": ["label"]},
        {"step": "lookup", "on": {"v": "code", "w": "code2"}, "columns": ["label"], "prefix": "l_"},
        {
            "step": "lookup",
            "on": {"v": "code", "w": "code2"},
            "columns": ["label"],
            "on_missing": "quarantine",
        },
        {"step": "lookup", "on": {"v": "code"}, "columns": ["label"], "on_missing": "quarantine"},
        {"step": "trim", "columns": ["t"]},
    ]
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(-3, 6)),
                st.sampled_from(["1", " 2", "x", None]),
            ),
            max_size=12,
        ),
        min_size=1,
        max_size=3,
    ),
    st.lists(EXPRESSIONS, min_size=1, max_size=6),
)
def test_fused_equals_step_by_step(
    monkeypatch: pytest.MonkeyPatch,
    ref: Path,
    data: list[list[tuple[int | None, str | None]]],
    steps: list[dict[str, Any]],
) -> None:
    steps = [{"step": "derive", "column": "w", "expr": "v * 2"}] + [
        {**s, "file": str(ref)} if s["step"] == "lookup" else s for s in steps
    ]
    batches = [
        pa.record_batch(
            {
                "v": pa.array([d[0] for d in rows], pa.int64()),
                "t": pa.array([d[1] for d in rows], pa.string()),
            }
        )
        for rows in data
    ]
    assert fused(steps, batches) == unfused(monkeypatch, steps, batches)


@pytest.mark.parametrize(
    "step",
    [
        {"step": "deduplicate", "key": ["k"]},
        {"step": "deduplicate", "key": ["k"], "keep": "last"},
        {"step": "deduplicate", "key": ["k"], "order_by": "o"},
        {"step": "deduplicate", "key": ["k"], "keep": "last", "order_by": "o"},
    ],
)
def test_integer_key_deduplicate_matches_the_generic_path(step: dict[str, Any]) -> None:
    keys = [[3, 1, 3, None, 2, None, 1], [2, 5, None, 5, 7, 3], [7, 8, 8]]
    order = [[5, 1, 2, 7, 7, 0, 9], [1, 2, 3, 1, 0, 4], [1, 3, 2]]

    def outputs(key_type: pa.DataType) -> list[tuple[list[Any], list[int]]]:
        p = processor([step])
        found = []
        for k, o in zip(keys, order, strict=True):
            batch = pa.record_batch({"k": pa.array(k).cast(key_type), "o": o, "i": range(len(k))})
            out = p.process(batch)
            found.append((out.batch.column("i").to_pylist(), sorted(out.rejected)))
        return found

    assert outputs(pa.int32()) == outputs(pa.string())
    if step == {"step": "deduplicate", "key": ["k"]}:
        assert outputs(pa.int64()) == [
            ([0, 1, 3, 4], [2, 5, 6]),
            ([1, 4], [0, 2, 3, 5]),
            ([1], [0, 2]),
        ]


def test_integer_key_deduplicate_across_many_batches() -> None:
    p = processor([{"step": "deduplicate", "key": ["k"]}])
    kept = []
    for start in range(0, 100, 10):
        keys = pa.array([(start + i) // 2 for i in range(10)], pa.int64())
        kept += p.process(pa.record_batch({"k": keys})).batch.column("k").to_pylist()
    assert kept == list(range(50))


@pytest.mark.parametrize("keep", [0, 1, 4])
def test_ascii_mask_equals_the_general_mask(keep: int) -> None:
    values = pa.array(["4111222233334444", "", None, "abc", "abcd", "abcde", "12"]).slice(1)
    general = processor(
        [{"step": "protect", "columns": {"c": "mask"}, "keep_last": keep, "mask_char": "•"}]
    ).process(pa.record_batch({"c": values}))
    fast = mask_ascii(values, keep, "*")
    assert fast is not None
    expected = [
        None if v is None else v.replace("•", "*") for v in general.batch.column(0).to_pylist()
    ]
    assert fast.to_pylist() == expected
    assert mask_ascii(pa.array(["né"]), keep, "*") is None


def test_integer_unique_check_matches_the_generic_path() -> None:
    keys = [[3, 1, 3, None, 2, None], [2, 5, None, 5]]

    def rejected(key_type: pa.DataType) -> list[dict[int, str]]:
        p = processor(checks=[{"check": "unique", "columns": ["k"]}])
        return [
            p.process(pa.record_batch({"k": pa.array(k).cast(key_type)})).rejected for k in keys
        ]

    found = rejected(pa.int64())
    assert found == rejected(pa.string())
    assert [sorted(r) for r in found] == [[2, 5], [0, 2, 3]]
    assert found[0][2] == "stream 's': checks[0] (unique): k duplicate of (k)"


@pytest.mark.parametrize(
    ("keys", "ref_text", "labels"),
    [
        (pa.array([2, None, 7, 1, 2], pa.int32()), "code,label\n1,one\n2,two\n,nil\n", [0, 3, 4]),
        (pa.array([2, None, 1], pa.int8()), "code,label\n1,one\n2,two\n300,big\n", [0, 2]),
        (pa.array(["b", None, "a", "c"]), "code,label\na,one\nb,two\n", [0, 2]),
    ],
)
def test_arrow_lookup_equals_the_join(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    keys: pa.Array,
    ref_text: str,
    labels: list[int],
) -> None:
    from aggregator.transform.steps import Lookup

    (tmp_path / "r.csv").write_text(ref_text)
    step = {"step": "lookup", "file": str(tmp_path / "r.csv"), "on": {"k": "code"}}
    step |= {"columns": ["label"], "on_missing": "quarantine"}
    batch = pa.record_batch({"k": keys})
    arrow = fused([step], [batch])
    with monkeypatch.context() as m:
        m.setattr(Lookup, "_arrow_rows", lambda self, table, ctx: None)
        joined = fused([step], [batch])
    assert arrow == joined
    rows, rejected = arrow[0]
    assert [r["k"] for r in rows] == [keys[i].as_py() for i in labels]
    assert [r["label"] for r in rows] == [
        {1: "one", 2: "two", "a": "one", "b": "two"}[r["k"]] for r in rows
    ]
    assert sorted(rejected) == sorted(set(range(len(keys))) - set(labels))


def test_lookup_miss_before_a_filter_is_named_by_the_lookup(
    monkeypatch: pytest.MonkeyPatch, ref: Path
) -> None:
    steps = [
        {"step": "derive", "column": "w", "expr": "v * 2"},
        {
            "step": "lookup",
            "file": str(ref),
            "on": {"v": "code", "w": "code2"},
            "columns": ["label"],
            "on_missing": "quarantine",
        },
        {"step": "filter", "where": "v % 3 <> 0"},
    ]
    batches = [pa.record_batch({"v": pa.array([None], pa.int64()), "t": pa.array(["x"])})]
    expected = [([], {0: "stream 's': transforms[1] (lookup): no match for v=None, w=None"})]
    assert fused(steps, batches) == unfused(monkeypatch, steps, batches) == expected


@pytest.mark.parametrize("keep", [0, 3, 8])
def test_fixed_width_mask_equals_the_general_mask(keep: int) -> None:
    values = pa.array(["ab      ", "12345678", "x       ", "zzzzzzzz"]).slice(1)  # char(8)
    general = processor(
        [{"step": "protect", "columns": {"c": "mask"}, "keep_last": keep, "mask_char": "•"}]
    ).process(pa.record_batch({"c": values}))
    fast = mask_ascii(values, keep, "*")
    assert fast is not None
    assert fast.to_pylist() == [v.replace("•", "*") for v in general.batch.column(0).to_pylist()]
