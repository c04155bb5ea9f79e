"""SQLite declared types <-> Arrow types, and exact conversion of SQLite values to Arrow.

SQLite is dynamically typed: a column's declared type only gives it an *affinity*, and any
value may end up in any column. Reading therefore converts each column of a fetched batch
with a strict, vectorized fast path, and only on failure looks at single values to name
those that do not fit (they are quarantined by the source, never coerced or dropped).

Writing uses declared types that keep values exact under SQLite's affinity rules: values
SQLite cannot hold natively (decimals, unsigned 64-bit integers, JSON, nested values) are
stored as text in columns with TEXT affinity (``DECIMAL_TEXT(12,2)``, ``JSON_TEXT``), because
a column declared ``DECIMAL(12,2)`` has NUMERIC affinity and would turn ``'12.50'`` into the
float ``12.5`` (and keep only 15 significant digits of longer numbers).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.inference import cast_text
from aggregator.core.schema import decimal_text
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID, decimal_type, type_to_string

_DECIMAL_DECL = re.compile(
    r"\b(?:DECIMAL|NUMERIC|NUMBER|DEC)(?:_TEXT)?\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)"
)
_BARE_NUMERIC = re.compile(r"\b(?:DECIMAL|NUMERIC|NUMBER|DEC)(?:_TEXT)?\b")
_NAIVE_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$"
_MAX_EXACT_FLOAT_INT = 2**53

#: Bare ``NUMERIC``/``DECIMAL`` columns (no precision) are read as this decimal type.
DEFAULT_DECIMAL = pa.decimal128(38, 10)


def quote(name: str) -> str:
    """Quote an identifier for SQLite."""
    return '"' + name.replace('"', '""') + '"'


def affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (section 3.1 of the datatype docs)."""
    text = declared.upper()
    if "INT" in text:
        return "INTEGER"
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in text or not text.strip():
        return "BLOB"
    if any(word in text for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type for a column declared as ``declared`` (unknown types read as text)."""
    text = declared.upper().strip()
    if "JSON" in text:
        return JSON
    if "UUID" in text:
        return UUID
    if "BOOL" in text:
        return pa.bool_()
    if m := _DECIMAL_DECL.search(text):
        precision, scale = int(m.group(1)), int(m.group(2) or 0)
        if 0 < precision <= 76 and scale <= precision:
            return decimal_type(precision, scale)
        return pa.string()
    if _BARE_NUMERIC.search(text):
        return DEFAULT_DECIMAL
    if "TIMESTAMP" in text or "DATETIME" in text:
        aware = "TZ" in text.replace("TIMESTAMP", "") or "TIME ZONE" in text
        return TIMESTAMPTZ if aware and "WITHOUT" not in text else TIMESTAMP
    if "DATE" in text:
        return pa.date32()
    if "INT" in text:
        return pa.int64()
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in text:
        return pa.binary()
    if any(word in text for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return pa.string()


def declared_type(dtype: pa.DataType) -> str:
    """The declared SQLite type for an Arrow type: says what it is, keeps values exact."""
    if isinstance(dtype, pa.JsonType):
        return "JSON_TEXT"
    if isinstance(dtype, pa.UuidType):
        return "UUID"
    if pa.types.is_dictionary(dtype):
        return declared_type(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL_TEXT({dtype.precision},{dtype.scale})"
    if dtype == pa.uint64():
        return "DECIMAL_TEXT(20,0)"
    if pa.types.is_integer(dtype):
        return {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[dtype.bit_width]
    if pa.types.is_floating(dtype):
        return "REAL" if dtype == pa.float64() else "FLOAT"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype):
        return "TEXT"
    if (
        pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    ):
        return "BLOB"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    if pa.types.is_time(dtype):
        return "TIME"
    if _is_nested(dtype):
        return "JSON_TEXT"
    raise TypeError(f"no exact SQLite storage for {dtype}")


def _is_nested(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
        or pa.types.is_struct(dtype)
        or pa.types.is_map(dtype)
    )


# --------------------------------------------------------------------------- Arrow -> values


def iso_timestamps(values: pa.Array) -> pa.Array:
    """ISO-8601 text of timestamps: ``T`` separator, all sub-second digits, ``+00:00``."""
    dtype = values.type
    if dtype.tz is not None:
        utc = pc.cast(values, pa.timestamp(dtype.unit, tz="UTC"))
        text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise(text, pa.scalar("+00:00"), "")
    return pc.strftime(values, format="%Y-%m-%dT%H:%M:%S")


def jsonable(value: Any) -> Any:
    """A nested value's leaves as JSON: decimals and times as exact text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def json_text(value: Any) -> str:
    """Compact JSON of a nested value (see :func:`jsonable`)."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))


def text_form(values: pa.Array) -> pa.Array:
    """The exact text form of values stored as text (decimals, times, JSON, UUID, nested)."""
    dtype = values.type
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(dtype, pa.JsonType):
        return values.storage
    if isinstance(dtype, pa.UuidType):
        return pa.array(
            [None if b is None else str(uuid.UUID(bytes=b)) for b in values.storage.to_pylist()],
            pa.string(),
        )
    if pa.types.is_dictionary(dtype):
        return text_form(values.dictionary_decode())
    if pa.types.is_timestamp(dtype):
        return iso_timestamps(values)
    if pa.types.is_decimal(dtype):
        return decimal_text(values)
    if _is_nested(dtype):
        return pa.array(
            [None if v is None else json_text(v) for v in values.to_pylist()], pa.string()
        )
    return pc.cast(values, pa.string())


def sqlite_values(values: pa.Array) -> list[Any]:
    """Python values to bind for SQLite, exact for every type (see :func:`declared_type`)."""
    dtype = values.type
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(dtype):
        return sqlite_values(values.dictionary_decode())
    if isinstance(dtype, pa.ExtensionType) or dtype == pa.uint64():
        return text_form(values).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_boolean(dtype) or pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return values.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype):
        return values.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return values.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_fixed_size_binary(dtype):
        return values.to_pylist()  # type: ignore[no-any-return]
    return text_form(values).to_pylist()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- values -> Arrow


class Misfit(ValueError):
    """A value does not fit the Arrow type."""


def _kinds(values: Sequence[object]) -> set[type]:
    kinds = set(map(type, values))
    kinds.discard(type(None))
    return kinds


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        raise Misfit(f"{value!r} is not a finite number")
    return format(decimal.Decimal(repr(value)), "f")


def _stringly(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with leaves JSON cannot hold natively replaced by ``string``."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return pa.list_(_stringly(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _stringly(f.type)) for f in dtype])
    if (
        pa.types.is_boolean(dtype)
        or pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_string(dtype)
    ):
        return dtype
    return pa.string()


def _nested(values: Sequence[object], dtype: pa.DataType) -> pa.Array:
    parsed = [json.loads(v) if isinstance(v, str) else v for v in values]
    try:
        return pa.array(parsed, dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    loose = _stringly(dtype)
    if loose == dtype:
        raise Misfit(f"not a valid {type_to_string(dtype)}")
    return pc.cast(pa.array(parsed, loose), dtype)


def _texts(
    values: Sequence[object], allowed: tuple[type, ...], decimal_floats: bool = False
) -> pa.Array:
    out: list[str | None] = []
    for v in values:
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, bool):
            raise Misfit("boolean")
        elif isinstance(v, int) and int in allowed:
            out.append(str(v))
        elif isinstance(v, float) and float in allowed:
            out.append(_float_text(v) if decimal_floats else repr(v))
        else:
            raise Misfit(type(v).__name__)
    return pa.array(out, pa.string())


def to_arrow(values: Sequence[object], dtype: pa.DataType) -> pa.Array:
    """Convert SQLite (or JSON) values to ``dtype`` exactly; raises on any misfit.

    Accepted: integers for integer types; floats (and integers up to 2**53) for floats;
    integers, floats (by their shortest text) and decimal text for decimals; text and
    numbers (by their exact text) for strings; ISO text for dates and timestamps (naive
    text in a ``timestamptz`` column is read as UTC); valid JSON text for JSON; canonical
    text or 16 bytes for UUIDs; JSON text for lists and structs.
    """
    kinds = _kinds(values)
    if not kinds:
        return pa.nulls(len(values), dtype)
    if isinstance(dtype, pa.JsonType):
        texts = _texts(values, (int, float))
        for text in texts.to_pylist():
            if text is not None:
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise Misfit("not valid JSON") from exc
        return pa.ExtensionArray.from_storage(JSON, texts)
    if isinstance(dtype, pa.UuidType):
        raw: list[bytes | None] = []
        for v in values:
            if v is None:
                raw.append(None)
            elif isinstance(v, bytes) and len(v) == 16:
                raw.append(v)
            elif isinstance(v, str):
                try:
                    raw.append(uuid.UUID(v).bytes)
                except ValueError as exc:
                    raise Misfit("not a UUID") from exc
            else:
                raise Misfit("not a UUID")
        return pa.ExtensionArray.from_storage(UUID, pa.array(raw, pa.binary(16)))
    if pa.types.is_boolean(dtype):
        if kinds <= {int}:
            if not set(values) <= {0, 1, None}:
                raise Misfit("not 0 or 1")
            return pc.cast(pa.array(values, pa.int64()), pa.bool_())
        return cast_text(_texts(values, (int,)), dtype)
    if pa.types.is_integer(dtype):
        if kinds <= {int}:
            try:
                return pa.array(values, dtype)
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise Misfit("out of range") from exc
        return cast_text(_texts(values, (int,)), dtype)
    if pa.types.is_floating(dtype):
        if not kinds <= {int, float}:
            raise Misfit("not a number")
        if int in kinds and any(
            isinstance(v, int) and abs(v) > _MAX_EXACT_FLOAT_INT for v in values
        ):
            raise Misfit("integer not exactly representable")
        return pa.array([None if v is None else float(v) for v in values], dtype)  # type: ignore[arg-type]
    if pa.types.is_decimal(dtype):
        return cast_text(_texts(values, (int, float), decimal_floats=True), dtype)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        if kinds <= {str}:
            return pa.array(values, dtype)
        return pc.cast(_texts(values, (int, float)), dtype)
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        if not kinds <= {bytes}:
            raise Misfit("not a blob")
        return pa.array(values, dtype)
    if pa.types.is_fixed_size_binary(dtype):
        if not kinds <= {bytes}:
            raise Misfit("not a blob")
        try:
            return pa.array(values, dtype)
        except pa.ArrowInvalid as exc:
            raise Misfit("wrong length") from exc
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        if not kinds <= {str}:
            raise Misfit("not ISO-8601 text")
        text = pa.array(values, pa.string())
        if pa.types.is_timestamp(dtype) and dtype.tz is not None:
            naive = pc.match_substring_regex(text, _NAIVE_TS)
            text = pc.if_else(naive, pc.binary_join_element_wise(text, "Z", ""), text)
        return pc.cast(text, dtype)
    if pa.types.is_time(dtype):
        if not kinds <= {str}:
            raise Misfit("not time text")
        return pa.array([None if v is None else dt.time.fromisoformat(v) for v in values], dtype)  # type: ignore[arg-type]
    if _is_nested(dtype):
        return _nested(values, dtype)
    return pa.array(values, dtype)


_ERRORS = (
    Misfit,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    ValueError,
    TypeError,
    OverflowError,
)


def convert_column(
    values: Sequence[object], dtype: pa.DataType, name: str
) -> tuple[pa.Array, dict[int, str]]:
    """Convert a column; values that do not fit become null and are reported by position."""
    try:
        return to_arrow(values, dtype), {}
    except _ERRORS:
        pass
    bad: dict[int, str] = {}
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            to_arrow([value], dtype)
        except _ERRORS:
            shown = value if not isinstance(value, bytes) else f"blob of {len(value)} bytes"
            bad[i] = f"column {name!r}: {shown!r} is not {type_to_string(dtype)}"
    cleaned = [None if i in bad else v for i, v in enumerate(values)]
    return to_arrow(cleaned, dtype), bad


def row_raw(names: Sequence[str], row: Sequence[object]) -> str:
    """A SQLite row as JSON text for quarantine (blobs as base64 under ``$base64``)."""

    def render(value: object) -> object:
        if isinstance(value, bytes):
            return {"$base64": base64.b64encode(value).decode("ascii")}
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value

    return json.dumps({n: render(v) for n, v in zip(names, row, strict=True)}, ensure_ascii=False)
