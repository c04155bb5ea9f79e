"""Exact mapping between logical type names and Arrow types, and the safe widening lattice.

Type names used in pipeline specs and stored schema versions::

    bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64
    decimal(P,S)            precision <= 38 -> decimal128, <= 76 -> decimal256
    string binary date time timestamp timestamp(ns) timestamptz timestamptz(ns)
    json uuid list<T> struct<name: T, ...>

``timestamptz`` values are instants stored in UTC. JSON and UUID use Arrow's canonical
extension types so that they stay JSON and UUID all the way to the destination.
"""

from __future__ import annotations

import re

import pyarrow as pa

JSON = pa.json_()
UUID = pa.uuid()
TIMESTAMP = pa.timestamp("us")
TIMESTAMPTZ = pa.timestamp("us", tz="UTC")

_SIMPLE: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": TIMESTAMP,
    "timestamp(ns)": pa.timestamp("ns"),
    "timestamptz": TIMESTAMPTZ,
    "timestamptz(ns)": pa.timestamp("ns", tz="UTC"),
    "json": JSON,
    "uuid": UUID,
    "null": pa.null(),
}
_ALIASES = {
    "boolean": "bool",
    "integer": "int64",
    "int": "int64",
    "bigint": "int64",
    "double": "float64",
    "float": "float64",
    "text": "string",
    "varchar": "string",
    "bytes": "binary",
    "datetime": "timestamp",
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """The narrowest Arrow decimal holding ``precision`` digits with ``scale`` decimals."""
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    raise ValueError(f"decimal precision {precision} exceeds 76 digits")


def type_from_string(name: str) -> pa.DataType:
    """Parse a logical type name (see module docstring) into an Arrow type."""
    text = name.strip()
    key = _ALIASES.get(text.lower(), text.lower())
    if key in _SIMPLE:
        return _SIMPLE[key]
    if m := _DECIMAL.match(key):
        return decimal_type(int(m.group(1)), int(m.group(2)))
    if key.startswith("list<") and key.endswith(">"):
        return pa.list_(type_from_string(text[5:-1]))
    if key.startswith("struct<") and key.endswith(">"):
        fields = [
            pa.field(part.split(":", 1)[0].strip(), type_from_string(part.split(":", 1)[1]))
            for part in _split_top_level(text[7:-1])
        ]
        return pa.struct(fields)
    raise ValueError(f"unknown type {name!r}")


def _split_top_level(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == "<" or ch == "(":
            depth += 1
        elif ch == ">" or ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    if body[start:].strip():
        parts.append(body[start:])
    return parts


def type_to_string(dtype: pa.DataType) -> str:
    """The logical name of an Arrow type; the inverse of :func:`type_from_string`."""
    if isinstance(dtype, pa.JsonType):
        return "json"
    if isinstance(dtype, pa.UuidType):
        return "uuid"
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        base = "timestamptz" if dtype.tz else "timestamp"
        suffix = "" if dtype.unit == "us" else f"({dtype.unit})"
        return base + suffix
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{type_to_string(dtype.value_type)}>"
    if pa.types.is_struct(dtype):
        inner = ", ".join(f"{f.name}: {type_to_string(f.type)}" for f in dtype)
        return f"struct<{inner}>"
    for key, value in _SIMPLE.items():
        if value == dtype and not isinstance(value, pa.ExtensionType):
            return key
    return str(dtype)


def schema_to_json(schema: pa.Schema) -> list[dict[str, object]]:
    """A JSON-friendly description of a schema: ``[{name, type, nullable}]``."""
    return [
        {"name": f.name, "type": type_to_string(f.type), "nullable": f.nullable} for f in schema
    ]


def schema_from_json(columns: list[dict[str, object]]) -> pa.Schema:
    """Inverse of :func:`schema_to_json`."""
    return pa.schema(
        [
            pa.field(
                str(c["name"]), type_from_string(str(c["type"])), bool(c.get("nullable", True))
            )
            for c in columns
        ]
    )


_INT_BITS = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}
_UINT_BITS = {pa.uint8(): 8, pa.uint16(): 16, pa.uint32(): 32, pa.uint64(): 64}
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
_UINT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 20}


def _integer_digits(dtype: pa.DataType) -> int | None:
    if dtype in _INT_BITS:
        return _INT_DIGITS[_INT_BITS[dtype]]
    if dtype in _UINT_BITS:
        return _UINT_DIGITS[_UINT_BITS[dtype]]
    return None


def _as_decimal(dtype: pa.DataType) -> tuple[int, int] | None:
    if pa.types.is_decimal(dtype):
        return dtype.precision, dtype.scale
    digits = _integer_digits(dtype)
    return (digits, 0) if digits is not None else None


def widen(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The narrowest type that holds every value of ``a`` and of ``b`` exactly.

    Returns ``None`` when no exact common type exists short of ``string``; callers decide
    (by schema policy) whether falling back to text is acceptable.
    """
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if a in _INT_BITS and b in _INT_BITS:
        return a if _INT_BITS[a] >= _INT_BITS[b] else b
    if a in _UINT_BITS and b in _UINT_BITS:
        return a if _UINT_BITS[a] >= _UINT_BITS[b] else b
    if pa.types.is_floating(a) and pa.types.is_floating(b):
        return pa.float64()
    da, db = _as_decimal(a), _as_decimal(b)
    if da is not None and db is not None:
        scale = max(da[1], db[1])
        integral = max(da[0] - da[1], db[0] - db[1])
        if integral + scale > 76:
            return None
        return decimal_type(max(integral + scale, 1), scale)
    if pa.types.is_date(a) and pa.types.is_timestamp(b) and b.tz is None:
        return b
    if pa.types.is_date(b) and pa.types.is_timestamp(a) and a.tz is None:
        return a
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and (a.tz is None) == (b.tz is None):
        unit = "ns" if "ns" in (a.unit, b.unit) else "us"
        return pa.timestamp(unit, tz=a.tz)
    if pa.types.is_string(a) and pa.types.is_large_string(b):
        return b
    if pa.types.is_large_string(a) and pa.types.is_string(b):
        return a
    if (pa.types.is_list(a) or pa.types.is_large_list(a)) and (
        pa.types.is_list(b) or pa.types.is_large_list(b)
    ):
        inner = widen(a.value_type, b.value_type)
        return pa.list_(inner) if inner is not None else None
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return _widen_struct(a, b)
    return None


def _widen_struct(a: pa.StructType, b: pa.StructType) -> pa.DataType | None:
    fields: dict[str, pa.DataType] = {f.name: f.type for f in a}
    for f in b:
        if f.name in fields:
            merged = widen(fields[f.name], f.type)
            if merged is None:
                return None
            fields[f.name] = merged
        else:
            fields[f.name] = f.type
    return pa.struct([pa.field(n, t) for n, t in fields.items()])


def is_textual(dtype: pa.DataType) -> bool:
    """True for string-like types (string, large_string, JSON)."""
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or isinstance(dtype, pa.JsonType)
    )
