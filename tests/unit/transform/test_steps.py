"""Every built-in step with exact outputs."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from aggregator.core.errors import ConfigError, RunError
from tests.unit.transform.helpers import processor, run

pytestmark = pytest.mark.unit
B = {"id": [1, 2, 3], "name": [" Ann ", "bob", None], "n": ["1", "x", "3"]}


def test_select_drop_rename() -> None:
    rows, _ = run(B, [{"step": "select", "columns": ["name", "id"]}])
    assert list(rows[0]) == ["name", "id"]
    rows, _ = run(
        B, [{"step": "drop", "columns": ["name"]}, {"step": "rename", "columns": {"n": "num"}}]
    )
    assert rows[0] == {"id": 1, "num": "1"}


def test_cast_quarantines_failing_values_with_value() -> None:
    rows, rejected = run(B, [{"step": "cast", "columns": {"n": "int32"}}])
    assert [r["n"] for r in rows] == [1, 3]
    assert rejected == {1: "stream 's': transforms[0] (cast): column 'n': cannot cast 'x' to int32"}


def test_cast_on_error_fail() -> None:
    with pytest.raises(RunError, match="cannot cast 'x'"):
        run(B, [{"step": "cast", "columns": {"n": "int32"}, "on_error": "fail"}])


def test_derive_and_replace() -> None:
    rows, _ = run(
        {"a": [1, 2]},
        [
            {"step": "derive", "column": "b", "expr": "a * 10"},
            {"step": "derive", "column": "a", "expr": "a + b"},
        ],
    )
    assert rows == [{"a": 11, "b": 10}, {"a": 22, "b": 20}]


def test_derive_runtime_error_quarantines_only_failing_row() -> None:
    rows, rejected = run(
        {"t": ["1", "zz", "3"]}, [{"step": "derive", "column": "i", "expr": "CAST(t AS INTEGER)"}]
    )
    assert [r["i"] for r in rows] == [1, 3]
    assert list(rejected) == [1] and "transforms[0] (derive)" in rejected[1]


def test_filter_quarantines_or_drops() -> None:
    rows, rejected = run({"a": [1, 2, None]}, [{"step": "filter", "where": "a > 1"}])
    assert rows == [{"a": 2}]
    assert rejected == {
        0: "stream 's': transforms[0] (filter): predicate 'a > 1' is not true",
        2: "stream 's': transforms[0] (filter): predicate 'a > 1' is not true",
    }
    rows, rejected = run({"a": [1, 2]}, [{"step": "filter", "where": "a > 1", "on_drop": "drop"}])
    assert rows == [{"a": 2}] and rejected == {}


@pytest.mark.parametrize(("keep", "expected"), [("first", [1, 3]), ("last", [2, 3])])
def test_deduplicate(keep: str, expected: list[int]) -> None:
    data = {"k": ["a", "a", "b"], "v": [1, 2, 3], "ts": [1, 5, 1]}
    rows, rejected = run(
        data, [{"step": "deduplicate", "key": ["k"], "keep": keep, "order_by": "ts"}]
    )
    assert [r["v"] for r in rows] == expected
    assert len(rejected) == 1 and "duplicate of key (k)" in next(iter(rejected.values()))


def test_deduplicate_multi_key_across_batches() -> None:
    p = processor([{"step": "deduplicate", "key": ["a", "b"]}])
    first = p.process(pa.record_batch({"a": [1, 1, 1], "b": ["x", "x", None]}))
    assert first.batch.to_pylist() == [{"a": 1, "b": "x"}, {"a": 1, "b": None}]
    assert list(first.rejected) == [1]
    second = p.process(pa.record_batch({"a": [1, 2], "b": [None, "x"]}))
    assert second.batch.to_pylist() == [{"a": 2, "b": "x"}] and list(second.rejected) == [0]


def test_flatten_struct_and_json() -> None:
    s = pa.array(
        [{"x": 1, "y": {"z": "q"}}],
        pa.struct([("x", pa.int64()), ("y", pa.struct([("z", pa.string())]))]),
    )
    rows, _ = run(pa.record_batch({"id": [1], "s": s}), [{"step": "flatten"}])
    assert rows == [{"id": 1, "s_x": 1, "s_y_z": "q"}]
    rows, _ = run(
        {"j": ['{"a": 1, "b": "x"}', '{"a": 2}']}, [{"step": "flatten", "columns": ["j"]}]
    )
    assert rows == [{"j_a": 1, "j_b": "x"}, {"j_a": 2, "j_b": None}]


def test_unnest_outer() -> None:
    rows, _ = run(
        {"id": [1, 2, 3], "tags": [["a", "b"], [], None]}, [{"step": "unnest", "column": "tags"}]
    )
    assert rows == [
        {"id": 1, "tags": "a"},
        {"id": 1, "tags": "b"},
        {"id": 2, "tags": None},
        {"id": 3, "tags": None},
    ]


def test_normalize_names() -> None:
    rows, _ = run(
        {"OrderID": [1], "Unit Price ($)": [2], "order_id": [3]}, [{"step": "normalize_names"}]
    )
    assert list(rows[0]) == ["order_id", "unit_price", "order_id_2"]


def test_map_values() -> None:
    rows, _ = run(
        {"c": ["de", "fr", "xx"]},
        [{"step": "map_values", "column": "c", "mapping": {"de": "DE", "fr": "FR"}}],
    )
    assert [r["c"] for r in rows] == ["DE", "FR", "xx"]
    rows, _ = run(
        {"c": ["de", "xx"]},
        [
            {
                "step": "map_values",
                "column": "c",
                "mapping": {"de": 1},
                "keep_unmapped": False,
                "default": 0,
            }
        ],
    )
    assert [r["c"] for r in rows] == [1, 0]


def test_lookup_file(tmp_path: Any) -> None:
    ref = tmp_path / "ref.csv"
    ref.write_text("code,label\n1,one\n2,two\n")
    step = {"step": "lookup", "file": str(ref), "on": {"c": "code"}, "columns": ["label"]}
    rows, _ = run({"c": [2, 3, 1]}, [step])
    assert rows == [{"c": 2, "label": "two"}, {"c": 3, "label": None}, {"c": 1, "label": "one"}]
    rows, rejected = run({"c": [2, 3]}, [{**step, "on_missing": "quarantine"}])
    assert rows == [{"c": 2, "label": "two"}]
    assert rejected == {1: "stream 's': transforms[0] (lookup): no match for c=3"}


def test_cleansing() -> None:
    rows, _ = run(
        {"a": ["  Hi There ", "n/a", None], "b": ["x-1", "y-22", None]},
        [
            {"step": "trim", "columns": ["a"]},
            {"step": "case", "columns": ["a"], "to": "upper"},
            {"step": "null_if", "columns": ["a"], "values": ["N/A"]},
            {"step": "fill_null", "columns": {"a": "?"}},
            {
                "step": "regex_replace",
                "columns": ["b"],
                "pattern": "-(\\d+)",
                "replacement": "#\\1",
            },
        ],
    )
    assert rows == [{"a": "HI THERE", "b": "x#1"}, {"a": "?", "b": "y#22"}, {"a": "?", "b": None}]


def test_parse_date_and_number_with_formats() -> None:
    rows, rejected = run(
        {"d": ["31/12/2024", "32/01/2024"], "x": ["1.234,50", "7"]},
        [
            {"step": "parse_date", "columns": ["d"], "format": "%d/%m/%Y"},
            {
                "step": "parse_number",
                "columns": ["x"],
                "to": "decimal(10,2)",
                "decimal_separator": ",",
                "thousands_separator": ".",
            },
        ],
    )
    assert rows == [{"d": dt.date(2024, 12, 31), "x": Decimal("1234.50")}]
    assert rejected == {
        1: "stream 's': transforms[0] (parse_date): column 'd': cannot parse '32/01/2024' "
        "as date with format '%d/%m/%Y'"
    }


@pytest.mark.parametrize("step", [{"step": "trim"}, {"step": "case", "to": "upper"}])
def test_ascii_text_kernels_agree_with_the_unicode_ones(step: dict[str, Any]) -> None:
    ascii_rows, _ = run({"t": ["  ab c\t", None, "", " x"]}, [{**step, "columns": ["t"]}])
    mixed_rows, _ = run(
        {"t": ["  ab c\t", None, "", " x", "\u00a0é\u2003"]}, [{**step, "columns": ["t"]}]
    )
    assert [r["t"] for r in mixed_rows][:4] == [r["t"] for r in ascii_rows]
    if step["step"] == "trim":
        assert [r["t"] for r in ascii_rows] == ["ab c", None, "", "x"]
        assert mixed_rows[4]["t"] == "é"  # Unicode spaces trimmed too
    else:
        assert [r["t"] for r in ascii_rows] == ["  AB C\t", None, "", " X"]
        assert mixed_rows[4]["t"] == "\u00a0É\u2003"


def test_parse_iso_dates_fast_and_lenient_paths_agree() -> None:
    step = [{"step": "parse_date", "columns": ["d"], "format": "%Y-%m-%d"}]
    rows, rejected = run({"d": ["2024-12-31", None, "2024-02-29"]}, step)
    assert [r["d"] for r in rows] == [dt.date(2024, 12, 31), None, dt.date(2024, 2, 29)]
    assert rejected == {}
    rows, rejected = run({"d": ["2024-12-31", "2024-2-3", "2024-13-01"]}, step)
    assert [r["d"] for r in rows] == [dt.date(2024, 12, 31), dt.date(2024, 2, 3)]
    assert list(rejected) == [2] and "cannot parse '2024-13-01'" in rejected[2]


def test_parse_date_refuses_days_past_the_end_of_the_month() -> None:
    step = [{"step": "parse_date", "columns": ["d"], "format": "%Y-%m-%d"}]
    rows, rejected = run({"d": ["2024-02-30", "2024-2-3", "2023-02-29", "2024-02-29"]}, step)
    assert [r["d"] for r in rows] == [dt.date(2024, 2, 3), dt.date(2024, 2, 29)]
    assert sorted(rejected) == [0, 2] and "cannot parse '2024-02-30'" in rejected[0]
    step = [{"step": "parse_date", "columns": ["d"], "format": "%d/%m/%Y", "to": "timestamp"}]
    rows, rejected = run({"d": ["31/04/2024", "30/04/2024", "1/5/2024"]}, step)
    assert [r["d"] for r in rows] == [dt.datetime(2024, 4, 30), dt.datetime(2024, 5, 1)]
    assert list(rejected) == [0]


def test_protect_mask_hash_tokenize_drop() -> None:
    rows, _ = run(
        {
            "card": ["4111222233334444", "12"],
            "email": ["a@b.c", None],
            "t": ["x", "x"],
            "ssn": ["1", "2"],
        },
        [
            {
                "step": "protect",
                "salt": "pepper",
                "columns": {"card": "mask", "email": "hash", "t": "tokenize", "ssn": "drop"},
            }
        ],
    )
    assert [r["card"] for r in rows] == ["************4444", "**"]
    assert (
        rows[0]["email"] == hashlib.sha256(b"peppera@b.c").hexdigest() and rows[1]["email"] is None
    )
    assert (
        rows[0]["t"] == rows[1]["t"] and rows[0]["t"].startswith("tok_") and len(rows[0]["t"]) == 28
    )
    assert "ssn" not in rows[0]


def test_protect_hash_requires_salt() -> None:
    with pytest.raises(Exception, match="needs a non-empty salt"):
        run(B, [{"step": "protect", "columns": {"name": "hash"}}])


def test_map_schema() -> None:
    step = {
        "step": "map_schema",
        "columns": {
            "key": {"from": "id", "type": "int32", "required": True},
            "label": {"from": "name", "default": "none"},
            "extra": {"type": "string", "default": "x"},
        },
    }
    rows, rejected = run(
        {"id": ["1", None, "3"], "name": ["a", "b", None], "junk": [0, 0, 0]}, [step]
    )
    assert rows == [
        {"key": 1, "label": "a", "extra": "x"},
        {"key": 3, "label": "none", "extra": "x"},
    ]
    assert rejected == {1: "stream 's': transforms[0] (map_schema): required column 'key' is null"}
    with pytest.raises(ConfigError, match="unmapped columns junk"):
        run({"id": ["1"], "name": ["a"], "junk": [0]}, [{**step, "unmapped": "fail"}])


def test_sql_step_references_stream_by_name() -> None:
    rows, rejected = run(
        {"a": [1, 2, 3]}, [{"step": "sql", "query": "SELECT *, a * a AS sq FROM s WHERE a <> 2"}]
    )
    assert rows == [{"a": 1, "sq": 1}, {"a": 3, "sq": 9}]
    assert rejected == {1: "stream 's': transforms[0] (sql): row not in the query result"}


def double(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.append_column("d", pa.compute.multiply(batch.column("a"), 2))


def boom(batch: pa.RecordBatch) -> pa.RecordBatch:
    raise ValueError("bad data")


def test_python_step_and_failure_policy() -> None:
    rows, _ = run({"a": [1, 2]}, [{"step": "python", "function": f"{__name__}:double"}])
    assert rows == [{"a": 1, "d": 2}, {"a": 2, "d": 4}]
    rows, rejected = run({"a": [1, 2]}, [{"step": "python", "function": f"{__name__}:boom"}])
    assert rows == [] and set(rejected.values()) == {
        "stream 's': transforms[0] (python): ValueError: bad data"
    }
    with pytest.raises(RunError, match="ValueError: bad data"):
        run({"a": [1]}, [{"step": "python", "function": f"{__name__}:boom", "on_error": "fail"}])


def test_unknown_column_in_expression_names_step_and_position() -> None:
    with pytest.raises(ConfigError) as err:
        run({"amount": [1]}, [{"step": "derive", "column": "x", "expr": "amount + amout"}])
    assert (
        "transforms[0] (derive): unknown column 'amout' at line 1, column 10" in err.value.message
    )


def test_unknown_column_position_on_second_line() -> None:
    with pytest.raises(ConfigError, match="unknown column 'bb' at line 2, column 4"):
        run({"a": [1]}, [{"step": "filter", "where": "a > 0\nor bb"}])


def test_rejected_child_rows_reject_their_parent() -> None:
    rows, rejected = run(
        {"id": [1, 2], "v": [[1, -1], [2]]},
        [{"step": "unnest", "column": "v"}],
        [{"check": "range", "column": "v", "min": 0}],
    )
    assert rows == [{"id": 2, "v": 2}]
    assert list(rejected) == [0]
