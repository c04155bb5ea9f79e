"""Arrow batches -> Singer messages, column by column (Arrow kernels, not a loop per row).

Scalar columns become JSON text with Arrow casts and string kernels (numbers and decimals
keep their exact digits, strings are escaped, timestamps are RFC 3339); the fragments are
joined into one ``RECORD`` line per row and the lines are taken from the Arrow buffer in one
piece. Nested, binary and extension columns are encoded value by value with ``json.dumps``
(the protocol forces JSON text for them).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _quote(values: pa.Array) -> pa.Array:
    for old, new in _ESCAPES:
        values = pc.replace_substring(values, old, new)
    if pc.any(pc.match_substring_regex(values, _CONTROL)).as_py():
        for code in [*range(9), 11, 12, *range(14, 32)]:
            values = pc.replace_substring(values, chr(code), f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', values, '"', "")


def _fragment(column: pa.Array) -> pa.Array:
    """JSON text of every value (``null`` for nulls)."""
    dtype = column.type
    if isinstance(dtype, pa.ExtensionType) or not (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_timestamp(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_time(dtype)
    ):
        values = column.to_pylist()  # forced: nested values need JSON text
        return pa.array([json.dumps(v, default=str, ensure_ascii=False) for v in values])
    text = pc.cast(column, pa.string())
    if pa.types.is_floating(dtype):
        text = pc.if_else(pc.is_finite(column), text, pa.scalar(None, pa.string()))
    elif pa.types.is_timestamp(dtype):
        text = _quote(pc.replace_substring(text, " ", "T", max_replacements=1))
    elif not (
        pa.types.is_integer(dtype) or pa.types.is_decimal(dtype) or pa.types.is_boolean(dtype)
    ):
        text = _quote(text)  # strings, dates, times
    return pc.fill_null(text, "null")


def record_lines(stream: str, batch: pa.RecordBatch) -> bytes:
    """The ``RECORD`` lines of ``batch`` (one per row, newline-terminated)."""
    if batch.num_rows == 0:
        return b""
    head = '{"type":"RECORD","stream":' + json.dumps(stream) + ',"record":{'
    parts: list[Any] = []
    for i, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        parts.append(("," if i else "") + json.dumps(name) + ":")
        parts.append(_fragment(column))
    lines = pc.binary_join_element_wise(head, *parts, "}}\n", "")
    one = pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines)
    text: str = pc.binary_join(one, "")[0].as_py()
    return text.encode()


def json_schema(field_type: pa.DataType) -> dict[str, Any]:
    """The Singer JSON Schema of an Arrow type (nullable)."""
    t = field_type
    if isinstance(t, pa.ExtensionType):
        if t.extension_name == "arrow.uuid":
            return {"type": ["string", "null"], "format": "uuid"}
        return {}
    if pa.types.is_boolean(t):
        return {"type": ["boolean", "null"]}
    if pa.types.is_integer(t):
        return {"type": ["integer", "null"]}
    if pa.types.is_decimal(t):
        step = 10**-t.scale if t.scale else 1
        return {
            "type": ["number", "null"],
            "multipleOf": step,
            "maximum": 10 ** (t.precision - t.scale),
            "exclusiveMaximum": True,
        }
    if pa.types.is_floating(t):
        return {"type": ["number", "null"]}
    if pa.types.is_timestamp(t):
        return {"type": ["string", "null"], "format": "date-time"}
    if pa.types.is_date(t):
        return {"type": ["string", "null"], "format": "date"}
    if pa.types.is_time(t):
        return {"type": ["string", "null"], "format": "time"}
    if pa.types.is_struct(t):
        props = {t.field(i).name: json_schema(t.field(i).type) for i in range(t.num_fields)}
        return {"type": ["object", "null"], "properties": props}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": ["array", "null"], "items": json_schema(t.value_type)}
    return {"type": ["string", "null"]}


def schema_message(stream: str, schema: pa.Schema, keys: tuple[str, ...]) -> bytes:
    """A ``SCHEMA`` line for ``schema``."""
    properties = {f.name: json_schema(f.type) for f in schema}
    message = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(keys),
    }
    return (json.dumps(message) + "\n").encode()
