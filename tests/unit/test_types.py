"""Type names, the widening lattice, and Arrow round trips (with hypothesis)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.core.types import (
    JSON,
    UUID,
    schema_from_json,
    schema_to_json,
    type_from_string,
    type_to_string,
    widen,
)

pytestmark = pytest.mark.unit

NAMES = [
    "bool", "int8", "int64", "uint64", "float32", "float64", "decimal(12,2)", "decimal(38,0)",
    "decimal(60,10)", "string", "binary", "date", "time", "timestamp", "timestamp(ns)",
    "timestamptz", "json", "uuid", "list<int64>", "list<list<string>>",
    "struct<a: int64, b: list<timestamptz>>",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_type_names_round_trip(name: str) -> None:
    assert type_to_string(type_from_string(name)) == name


def test_aliases_and_errors() -> None:
    assert type_from_string("BIGINT") == pa.int64()
    assert type_from_string("text") == pa.string()
    assert type_from_string("decimal(50,2)") == pa.decimal256(50, 2)
    with pytest.raises(ValueError, match="unknown type 'money'"):
        type_from_string("money")
    with pytest.raises(ValueError, match="exceeds 76"):
        type_from_string("decimal(80,2)")


def test_schema_json_round_trip() -> None:
    schema = pa.schema(
        [("a", pa.decimal128(12, 2)), ("j", JSON), ("u", UUID), ("t", pa.timestamp("us", "UTC"))]
    )
    assert schema_from_json(schema_to_json(schema)) == schema


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (pa.int32(), pa.int64(), pa.int64()),
        (pa.int64(), pa.decimal128(12, 2), pa.decimal128(21, 2)),
        (pa.decimal128(38, 0), pa.decimal128(10, 5), pa.decimal256(43, 5)),
        (pa.null(), pa.string(), pa.string()),
        (pa.float32(), pa.float64(), pa.float64()),
        (pa.date32(), pa.timestamp("us"), pa.timestamp("us")),
        (pa.timestamp("us", "UTC"), pa.timestamp("ns", "UTC"), pa.timestamp("ns", "UTC")),
        (pa.timestamp("us"), pa.timestamp("us", "UTC"), None),
        (pa.int64(), pa.float64(), None),
        (pa.int64(), pa.string(), None),
        (pa.list_(pa.int32()), pa.list_(pa.int64()), pa.list_(pa.int64())),
        (
            pa.struct([("a", pa.int32())]),
            pa.struct([("b", pa.string())]),
            pa.struct([("a", pa.int32()), ("b", pa.string())]),
        ),
    ],
)
def test_widening_lattice(a: pa.DataType, b: pa.DataType, expected: pa.DataType | None) -> None:
    assert widen(a, b) == expected
    assert widen(b, a) == expected or expected is None or pa.types.is_struct(expected)


decimals = st.decimals(
    min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=6, allow_nan=False
)
instants = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)


@given(
    ints=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=50),
    decs=st.lists(decimals, min_size=1, max_size=50),
    times=st.lists(instants, min_size=1, max_size=50),
    texts=st.lists(st.text(), min_size=1, max_size=50),
)
def test_arrow_round_trip_through_parquet_is_exact(
    ints: list[int], decs: list[Decimal], times: list[dt.datetime], texts: list[str]
) -> None:
    n = min(len(ints), len(decs), len(times), len(texts))
    table = pa.table(
        {
            "i": pa.array(ints[:n], pa.int64()),
            "d": pa.array(decs[:n], pa.decimal128(27, 6)),
            "t": pa.array(times[:n], pa.timestamp("us", "UTC")),
            "s": pa.array(texts[:n], pa.string()),
            "j": pa.ExtensionArray.from_storage(
                JSON, pa.array([f'{{"k": {i}}}' for i in ints[:n]])
            ),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert pq.read_table(io.BytesIO(buffer.getvalue())).equals(table)
