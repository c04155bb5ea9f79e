"""Text typing: exact inference rules and hypothesis round trips from text to Arrow."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.core.inference import TextTyper, infer_type

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", "+3"], pa.int64()),
        (["007", "1"], pa.string()),
        (["9223372036854775807"], pa.int64()),
        (["9223372036854775808"], pa.decimal128(19, 0)),
        (["123456789012345678901234567890123456789012"], pa.decimal256(42, 0)),
        (["1.5", "2"], pa.decimal128(19, 1)),
        (["0.123456789012345678901234567890123"], pa.decimal128(38, 33)),
        (["1e3", "2.5"], pa.float64()),
        (["true", "FALSE"], pa.bool_()),
        (["yes", "no"], pa.string()),
        (["2024-02-29", "2024-03-01"], pa.date32()),
        (["2024-02-30"], pa.string()),
        (["2024-01-01 10:00:00", "2024-01-01T10:00:00.123456"], pa.timestamp("us")),
        (["2024-01-01T10:00:00.123456789"], pa.timestamp("ns")),
        (["2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00Z"], pa.timestamp("us", "UTC")),
        (["2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00"], pa.string()),
        ([None, None], pa.null()),
    ],
)
def test_infer_type(values: list[str | None], expected: pa.DataType) -> None:
    assert infer_type(pa.array(values, pa.string())) == expected


def test_mixed_offsets_become_exact_utc_instants() -> None:
    typed = TextTyper().apply(
        pa.record_batch({"t": ["2024-01-01T10:00:00+02:00", "2024-01-01T03:30:00-05:00"]})
    )
    assert typed.batch.column("t").to_pylist() == [
        dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC),
    ]


def test_sticky_type_widens_when_values_change() -> None:
    typer = TextTyper()
    first = typer.apply(pa.record_batch({"a": ["1", "2"]}))
    assert first.batch.schema.field("a").type == pa.int64()
    second = typer.apply(pa.record_batch({"a": ["3", "4.25"]}))
    assert second.batch.column("a").to_pylist() == [Decimal("3.00"), Decimal("4.25")]
    third = typer.apply(pa.record_batch({"a": ["5", "five"]}))
    assert third.batch.column("a").to_pylist() == ["5", "five"]


def test_declared_types_reject_rows_with_reasons() -> None:
    typer = TextTyper(hints={"amount": pa.decimal128(12, 2)})
    result = typer.apply(pa.record_batch({"amount": ["1.50", "12.3.4", "1,299.00", "0.001", ""]}))
    assert result.batch.column("amount").to_pylist() == [Decimal("1.50"), None, None, None, None]
    assert result.rejected == {
        1: "column 'amount': '12.3.4' is not a valid decimal128(12, 2)",
        2: "column 'amount': '1,299.00' is not a valid decimal128(12, 2)",
        3: "column 'amount': '0.001' is not a valid decimal128(12, 2)",
    }


@given(st.lists(st.integers(min_value=-(10**40), max_value=10**40), min_size=1, max_size=40))
def test_integers_of_any_size_round_trip_exactly(values: list[int]) -> None:
    typed = TextTyper().apply(pa.record_batch({"v": [str(v) for v in values]})).batch
    assert [int(v) for v in typed.column("v").to_pylist()] == values


@given(
    st.lists(
        st.decimals(min_value=-(10**25), max_value=10**25, places=8, allow_nan=False),
        min_size=1,
        max_size=40,
    )
)
def test_decimals_round_trip_exactly(values: list[Decimal]) -> None:
    typed = TextTyper().apply(pa.record_batch({"v": [str(v) for v in values]})).batch
    assert [Decimal(str(v)) for v in typed.column("v").to_pylist()] == values


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(1901, 1, 1),
            max_value=dt.datetime(2199, 12, 31),
            timezones=st.sampled_from(
                [
                    dt.UTC,
                    dt.timezone(dt.timedelta(hours=5, minutes=30)),
                    dt.timezone(dt.timedelta(hours=-8)),
                ]
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_offset_timestamps_round_trip_as_instants(values: list[dt.datetime]) -> None:
    typed = TextTyper().apply(pa.record_batch({"v": [v.isoformat() for v in values]})).batch
    assert typed.column("v").to_pylist() == [v.astimezone(dt.UTC) for v in values]


def test_float_column_becomes_text_rather_than_rounding() -> None:
    typer = TextTyper()
    assert (
        typer.apply(pa.record_batch({"f": ["1.5e3", "2.25"]})).batch.column("f").type
        == pa.float64()
    )
    later = typer.apply(pa.record_batch({"f": ["70302000.38588416", "1e-3"]})).batch
    assert later.column("f").to_pylist() == ["70302000.38588416", "1e-3"]


def test_all_null_batches_do_not_pin_a_column_to_text() -> None:
    typer = TextTyper()
    assert (
        typer.apply(pa.record_batch({"a": pa.array([None, ""], pa.string())}))
        .batch.column("a")
        .type
        == pa.null()
    )
    assert typer.apply(pa.record_batch({"a": ["1"]})).batch.column("a").type == pa.int64()
    assert (
        typer.apply(pa.record_batch({"a": pa.array([None], pa.string())})).batch.column("a").type
        == pa.int64()
    )


@pytest.mark.parametrize(
    "dtype",
    [
        pa.int64(),
        pa.bool_(),
        pa.float64(),
        pa.decimal128(10, 2),
        pa.date32(),
        pa.timestamp("us"),
        pa.timestamp("us", "UTC"),
        pa.time64("us"),
        pa.null(),
    ],
)
@pytest.mark.parametrize("values", [[], [None, None]])
def test_cast_text_of_no_values_gives_nulls_of_the_type(
    dtype: pa.DataType, values: list[None]
) -> None:
    from aggregator.core.inference import cast_text

    result = cast_text(pa.array(values, pa.string()), dtype)
    assert result.type == dtype
    assert result.to_pylist() == values


def test_cast_text_still_rejects_a_value_among_nulls() -> None:
    from aggregator.core.inference import cast_text

    with pytest.raises(pa.ArrowInvalid, match="not a boolean"):
        cast_text(pa.array([None, "maybe"], pa.string()), pa.bool_())
    with pytest.raises(pa.ArrowInvalid, match="only nulls"):
        cast_text(pa.array([None, "x"], pa.string()), pa.null())
