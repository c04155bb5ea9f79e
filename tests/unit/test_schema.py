"""Schema reconciliation under each policy."""

from __future__ import annotations

import pyarrow as pa
import pytest

from aggregator.core.catalog import SchemaPolicy
from aggregator.core.errors import SchemaPolicyError
from aggregator.core.schema import normalize_column_names, reconcile

pytestmark = pytest.mark.unit

CURRENT = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))])


def _batch() -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int32()),
            "amount": pa.array(["1.50", "oops"]),
            "note": pa.array(["x", None]),
        }
    )


def test_first_batch_defines_the_schema() -> None:
    batch = pa.record_batch({"a": [1]})
    result = reconcile("s", None, batch, SchemaPolicy.FREEZE)
    assert result.schema == batch.schema
    assert result.diff.to_json() == {"added": [{"name": "a", "type": "int64"}], "widened": []}


def test_evolve_adds_and_widens_to_text_keeping_values() -> None:
    result = reconcile("s", CURRENT, _batch(), SchemaPolicy.EVOLVE)
    assert result.schema == pa.schema(
        [("id", pa.int64()), ("amount", pa.string()), ("note", pa.string())]
    )
    assert result.diff.to_json() == {
        "added": [{"name": "note", "type": "string"}],
        "widened": [{"name": "amount", "from": "decimal(12,2)", "to": "string"}],
    }
    assert result.batch.to_pydict() == {
        "id": [1, 2],
        "amount": ["1.50", "oops"],
        "note": ["x", None],
    }
    assert result.rejected == {}


def test_freeze_raises_naming_the_change() -> None:
    with pytest.raises(SchemaPolicyError, match="stream 's': schema is frozen") as info:
        reconcile("s", CURRENT, _batch(), SchemaPolicy.FREEZE)
    assert "note" in info.value.message and "amount" in info.value.message


def test_discard_columns_drops_new_columns_and_rejects_unfit_values() -> None:
    result = reconcile("s", CURRENT, _batch(), SchemaPolicy.DISCARD_COLUMNS)
    assert result.schema == CURRENT
    assert result.rejected == {
        1: "column 'amount': value does not fit frozen type decimal128(12, 2)"
    }
    assert result.batch.num_rows == 1
    assert result.batch.column("amount").to_pylist()[0].as_tuple().exponent == -2


def test_quarantine_rows_rejects_rows_using_new_columns() -> None:
    result = reconcile("s", CURRENT, _batch(), SchemaPolicy.QUARANTINE_ROWS)
    assert result.rejected == {
        0: "column 'note' is not in the stream schema",
        1: "column 'amount': value does not fit frozen type decimal128(12, 2)",
    }
    assert result.batch.num_rows == 0


def test_missing_columns_are_null_filled_and_narrow_types_cast_up() -> None:
    batch = pa.record_batch({"id": pa.array([7], pa.int8())})
    result = reconcile("s", CURRENT, batch, SchemaPolicy.FREEZE)
    assert not result.diff
    assert result.batch.to_pydict() == {"id": [7], "amount": [None]}


def test_normalize_column_names() -> None:
    assert normalize_column_names(["a", "A", "", "a", " b "]) == [
        "a",
        "A_2",
        "column_3",
        "a_3",
        "b",
    ]


def test_widening_decimals_to_text_never_uses_exponent_notation() -> None:
    from decimal import Decimal

    current = pa.schema([("v", pa.decimal128(38, 10))])
    batch = pa.record_batch({"v": pa.array(["x"])})
    previous = pa.array([Decimal("0"), Decimal("1E-10"), Decimal("2.5")], pa.decimal128(38, 10))
    result = reconcile("s", current, batch, SchemaPolicy.EVOLVE)
    from aggregator.core.schema import conform

    old = conform(pa.record_batch({"v": previous}), result.schema)
    assert old.column("v").to_pylist() == ["0.0000000000", "0.0000000001", "2.5000000000"]
