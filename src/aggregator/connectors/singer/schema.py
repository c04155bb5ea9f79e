"""Singer JSON Schema -> Arrow types, exactly.

``integer`` -> int64; ``number`` with ``multipleOf`` -> ``decimal128(P, S)`` (S from the
multipleOf, P from a power-of-ten ``maximum`` when given, else 38); other ``number`` ->
float64; ``string`` with ``format`` ``date-time`` -> timestamp[us, UTC], ``date`` -> date32,
``time`` -> time64[us]; other strings -> string; ``boolean`` -> bool; an ``object`` with
``properties`` -> struct; an ``array`` with typed ``items`` -> list. Anything else (unions of
several types, schemaless objects and arrays) returns ``None``: Arrow infers it from the
data (nested values stay structs/lists).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pyarrow as pa

from aggregator.core.types import TIMESTAMPTZ

_FORMATS = {"date-time": TIMESTAMPTZ, "date": pa.date32(), "time": pa.time64("us")}


def _types(prop: dict[str, Any]) -> list[str]:
    declared = prop.get("type", [])
    names = [declared] if isinstance(declared, str) else list(declared)
    return [t for t in names if t != "null"]


def _decimal(prop: dict[str, Any]) -> pa.DataType:
    step = Decimal(str(prop["multipleOf"])).normalize()
    exponent = step.as_tuple().exponent
    scale = max(0, -exponent) if isinstance(exponent, int) else 0
    precision = 38
    maximum = prop.get("maximum")
    if isinstance(maximum, int | float) and maximum > 1:
        digits = math.log10(float(maximum))
        if digits.is_integer():
            precision = min(38, max(int(digits), 1))
    precision = max(precision, scale + 1) if scale < 38 else 38
    return pa.decimal128(precision, min(scale, precision))


def arrow_type(prop: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type of a property schema, or ``None`` to let Arrow infer it."""
    if "anyOf" in prop:
        options = [o for o in prop["anyOf"] if _types(o) or "anyOf" in o]
        return arrow_type(options[0]) if len(options) == 1 else None
    types = _types(prop)
    if set(types) == {"integer", "number"}:
        types = ["number"]
    if not types:
        return pa.null() if prop.get("type") in ("null", ["null"]) else None
    if len(types) > 1:
        return None
    kind = types[0]
    if kind == "integer":
        return pa.int64()
    if kind == "number":
        return _decimal(prop) if "multipleOf" in prop else pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "string":
        return _FORMATS.get(str(prop.get("format")), pa.string())
    if kind == "object":
        props = prop.get("properties")
        if not props:
            return None
        fields = [(name, arrow_type(sub)) for name, sub in props.items()]
        if any(t is None for _, t in fields):
            return None
        return pa.struct([pa.field(n, t) for n, t in fields if t is not None])
    if kind == "array":
        items = prop.get("items")
        inner = arrow_type(items) if isinstance(items, dict) and items else None
        return pa.list_(inner) if inner is not None else None
    return None


def record_struct(schema: dict[str, Any]) -> tuple[pa.StructType, dict[str, pa.DataType]]:
    """Struct Arrow's JSON reader parses records with (properties of unknown type are
    inferred), and the top-level columns read as text then cast (dates and times, which
    Arrow's JSON reader cannot parse from strings)."""
    fields = []
    casts: dict[str, pa.DataType] = {}
    for name, prop in (schema.get("properties") or {}).items():
        dtype = arrow_type(prop) if isinstance(prop, dict) else None
        if dtype is None:
            continue
        if pa.types.is_date(dtype) or pa.types.is_time(dtype):
            casts[name] = dtype
            dtype = pa.string()
        fields.append(pa.field(name, dtype))
    return pa.struct(fields), casts


def arrow_schema(schema: dict[str, Any]) -> pa.Schema:
    """The Arrow schema ``discover`` reports (unknown types shown as JSON text)."""
    from aggregator.core.types import JSON

    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        dtype = arrow_type(prop) if isinstance(prop, dict) else None
        fields.append(pa.field(name, dtype if dtype is not None else JSON))
    return pa.schema(fields)


def declared_types(schema: dict[str, Any]) -> dict[str, str]:
    """The source-native type of each top-level property, as its JSON Schema says it:
    ``integer``, ``string (date-time)``, ``number (multipleOf 0.01)``, ``integer|string``..."""
    found: dict[str, str] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        names = _types(prop) or [
            str(t)
            for t in (s.get("type") for s in prop.get("anyOf", []) if isinstance(s, dict))
            if t and t != "null"
        ]
        text = "|".join(names) or "any"
        if prop.get("format"):
            text += f" ({prop['format']})"
        elif prop.get("multipleOf") is not None:
            text += f" (multipleOf {prop['multipleOf']})"
        found[str(name)] = text
    return found
