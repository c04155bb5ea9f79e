"""PostgreSQL types <-> Arrow types, exactly.

Reading goes through ADBC (libpq ``COPY`` binary decoded in C, see ADR 0002). Each column
gets a SELECT expression and an Arrow type: most types arrive natively; ``numeric(p,s)``
is selected as its exact text (``col::text``) and cast to ``decimal128(p,s)``; types
without an exact Arrow counterpart (unconstrained ``numeric``, ``interval``, ``timetz``,
``money``, geometric, network and other types) are selected as their PostgreSQL text
(``col::text``) and loaded as strings, which the source announces in a ``Log`` message.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID, decimal_type

_NATIVE: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "char": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "json": JSON,
    "jsonb": JSON,
    "uuid": UUID,
}
#: Types read through a SQL cast, with the Arrow type of the result.
_CAST: dict[str, tuple[str, pa.DataType]] = {
    "oid": ("int8", pa.int64()),
    "xid": ("text", pa.string()),
    "citext": ("text", pa.string()),
}
#: Element types whose arrays ADBC decodes natively into Arrow lists.
_ARRAY_ELEMENTS = {
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "text",
    "varchar",
    "bpchar",
    "date",
    "timestamp",
    "timestamptz",
}


@dataclass(frozen=True)
class PgColumn:
    """A column as discovered, with how to read it."""

    name: str
    declared: str  # format_type(), e.g. numeric(12,2), text[], mood
    type_name: str  # the (domain-resolved) type name, e.g. numeric, _text, mood
    type_kind: str  # pg_type.typtype: b base, e enum, d domain, c composite, r range...
    element: str | None  # element type name for arrays
    typmod: int
    not_null: bool

    @property
    def arrow_type(self) -> pa.DataType:
        """The exact Arrow type of the column's values."""
        return _resolve(self)[1]

    @property
    def as_text(self) -> bool:
        """True when the column is loaded as its PostgreSQL text because no exact type fits."""
        return _resolve(self)[2]

    def select(self, quoted: str) -> str:
        """The SELECT expression that reads this column."""
        cast = _resolve(self)[0]
        return f"{quoted}::{cast} AS {quoted}" if cast else quoted


def numeric_precision(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric(p,s)`` typmod, or ``None`` when unconstrained."""
    if typmod < 4:
        return None
    value = typmod - 4
    precision, scale = (value >> 16) & 0xFFFF, value & 0x7FF
    if value & 0x400:  # negative scales (PostgreSQL 15+) have no exact decimal type here
        return None
    return precision, scale


def _resolve(col: PgColumn) -> tuple[str | None, pa.DataType, bool]:
    """(cast, arrow type, loaded as text)."""
    name = col.type_name
    if name in _NATIVE:
        return None, _NATIVE[name], False
    if name in _CAST:
        cast, dtype = _CAST[name]
        return cast, dtype, cast == "text" and name != "citext"
    if name == "numeric":
        ps = numeric_precision(col.typmod)
        if ps is not None and 0 < ps[0] <= 38:
            # the server's text is exact and ~4x cheaper for ADBC to take than binary
            # numeric (which it turns into text itself); Arrow casts it to the decimal
            return "text", decimal_type(*ps), False
        return "text", pa.string(), False  # exact text: no fixed precision to promise
    if col.type_kind == "e":
        return "text", pa.string(), False
    if col.element is not None and name.startswith("_"):
        if col.element in _ARRAY_ELEMENTS:
            return None, pa.list_(_NATIVE[col.element]), False
        if col.element in ("json", "jsonb", "uuid", "numeric"):
            return "text[]", pa.list_(pa.string()), True
    return "text", pa.string(), True


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Cast a batch as ADBC delivers it to ``schema``; returns rows that do not fit.

    Numeric text is cast to its decimal type; values that do not fit (``NaN`` in a
    ``numeric(p,s)`` column) are reported by row with a reason and become null.
    ``infinity`` / ``-infinity`` dates and timestamps are clamped (see :func:`clamp_infinity`).
    """
    arrays: list[pa.Array] = []
    bad: dict[int, str] = {}
    for field, column in zip(schema, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType) and not isinstance(
            column.type, pa.JsonType | pa.UuidType
        ):
            column = column.storage
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = _cast_each(column, field, bad)
        arrays.append(clamp_infinity(column))
    return pa.RecordBatch.from_arrays(arrays, schema=schema), bad


#: What ADBC makes of PostgreSQL's infinities: its epoch shift (2000 -> 1970) wraps the
#: int64/int32 sentinels around, far outside any real value (before 4713 BC).
_INFINITY = {
    64: (-(2**63) + 946_684_800_000_000 - 1, -(2**63) + 946_684_800_000_000),
    32: (-(2**31) + 10_957 - 1, -(2**31) + 10_957),
}
#: ``infinity`` -> the largest, ``-infinity`` -> the smallest value every destination holds.
_CLAMPED = {
    64: (
        253_402_300_799_999_999,
        -62_135_596_800_000_000,
    ),  # 9999-12-31T23:59:59.999999, 0001-01-01
    32: (2_932_896, -719_162),  # 9999-12-31, 0001-01-01
}


def clamp_infinity(column: pa.Array) -> pa.Array:
    """Replace ``infinity`` / ``-infinity`` in date and microsecond timestamp columns (also in
    lists of them) by 9999-12-31 23:59:59.999999 / 0001-01-01 00:00:00."""
    dtype = column.type
    if pa.types.is_list(dtype) and (
        pa.types.is_timestamp(dtype.value_type) or pa.types.is_date32(dtype.value_type)
    ):
        values = clamp_infinity(column.values)
        if values is column.values:
            return column
        return pa.ListArray.from_arrays(
            column.offsets, values, type=dtype, mask=column.is_null() if column.null_count else None
        )
    if pa.types.is_timestamp(dtype) and dtype.unit == "us":
        bits, storage = 64, pa.int64()
    elif pa.types.is_date32(dtype):
        bits, storage = 32, pa.int32()
    else:
        return column
    raw = column.view(storage)
    positive, negative = _INFINITY[bits]
    if not pc.any(pc.less_equal(raw, negative)).as_py():
        return column
    high, low = _CLAMPED[bits]
    raw = pc.if_else(pc.equal(raw, positive), pa.scalar(high, storage), raw)
    raw = pc.if_else(pc.equal(raw, negative), pa.scalar(low, storage), raw)
    return raw.view(dtype)


def _cast_each(column: pa.Array, field: pa.Field, bad: dict[int, str]) -> pa.Array:
    """Error path: cast value by value, naming what does not fit."""
    values = column.to_pylist()
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            pa.array([value], column.type).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad.setdefault(i, f"column {field.name!r}: {value!r} does not fit {field.type}")
            values[i] = None
    return pc.cast(pa.array(values, column.type), field.type)


# --------------------------------------------------------------------------- Arrow -> PG


def pg_type(dtype: pa.DataType) -> str:
    """The PostgreSQL column type that holds ``dtype`` exactly."""
    if isinstance(dtype, pa.JsonType):
        return "jsonb"
    if isinstance(dtype, pa.UuidType):
        return "uuid"
    if pa.types.is_dictionary(dtype):
        return pg_type(dtype.value_type)
    if pa.types.is_decimal(dtype):
        return f"numeric({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "timestamptz" if dtype.tz else "timestamp"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = dtype.value_type
        if pa.types.is_list(inner) or pa.types.is_struct(inner):
            return "jsonb"
        return pg_type(inner) + "[]"
    if pa.types.is_struct(dtype) or pa.types.is_map(dtype):
        return "jsonb"
    simple = {
        pa.bool_(): "boolean",
        pa.int8(): "smallint",
        pa.int16(): "smallint",
        pa.int32(): "integer",
        pa.int64(): "bigint",
        pa.uint8(): "smallint",
        pa.uint16(): "integer",
        pa.uint32(): "bigint",
        pa.uint64(): "numeric(20,0)",
        pa.float16(): "real",
        pa.float32(): "real",
        pa.float64(): "double precision",
        pa.string(): "text",
        pa.large_string(): "text",
        pa.binary(): "bytea",
        pa.large_binary(): "bytea",
        pa.date32(): "date",
        pa.date64(): "date",
        pa.null(): "text",
    }
    if dtype in simple:
        return simple[dtype]
    if pa.types.is_time(dtype):
        return "time"
    if pa.types.is_fixed_size_binary(dtype):
        return "bytea"
    raise TypeError(f"no exact PostgreSQL type for {dtype}")
