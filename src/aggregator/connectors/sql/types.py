"""SQLAlchemy column types -> exact Arrow types, and driver values -> Arrow columns.

Values arrive as the DB-API driver returns them (no SQLAlchemy result processing). Each
column is first built with one ``pa.array`` call; when the driver hands over another
representation (SQLite's text dates, ``dict`` for JSON, ``uuid.UUID``...) the column is
normalized value by value, and values that still do not fit are reported by row with a
reason so their rows can be quarantined.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID, decimal_type


def arrow_type(column_type: Any, dialect: str) -> tuple[pa.DataType, bool]:
    """``(Arrow type, loaded as text because no exact type is known)`` of a reflected type."""
    t = column_type
    if isinstance(t, sa.Boolean):
        return pa.bool_(), False
    if isinstance(t, sa.Integer):
        unsigned = bool(getattr(t, "unsigned", False))
        if isinstance(t, sa.SmallInteger):
            return (pa.uint16() if unsigned else pa.int16()), False
        if isinstance(t, sa.BigInteger) or dialect == "sqlite":
            return (pa.uint64() if unsigned else pa.int64()), False
        return (pa.uint32() if unsigned else pa.int32()), False
    if isinstance(t, sa.Float):
        precision = getattr(t, "precision", None)
        single = "REAL" in type(t).__name__.upper() and dialect == "postgresql"
        return (pa.float32() if single or (precision and precision <= 24) else pa.float64()), False
    if isinstance(t, sa.Numeric):
        if t.precision is not None and 0 < t.precision <= 76:
            return decimal_type(t.precision, t.scale or 0), False
        return pa.string(), False  # unconstrained: kept as exact text
    if isinstance(t, sa.JSON):
        return JSON, False
    if isinstance(t, sa.Uuid):
        return UUID, False
    if isinstance(t, sa.DateTime):
        return (TIMESTAMPTZ if t.timezone else TIMESTAMP), False
    if isinstance(t, sa.Date):
        return pa.date32(), False
    if isinstance(t, sa.Time):
        return pa.time64("us"), False
    if isinstance(t, sa.String | sa.Enum):
        return pa.string(), False
    if isinstance(t, sa.LargeBinary | sa.types._Binary):
        return pa.binary(), False
    return pa.string(), True


def to_arrow(values: Sequence[Any], dtype: pa.DataType, bad: dict[int, str], name: str) -> pa.Array:
    """One column of driver values as ``dtype``; misfits become null and land in ``bad``."""
    try:
        if isinstance(dtype, pa.JsonType | pa.UuidType):
            raise pa.ArrowInvalid("normalize")
        return pa.array(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if all(v is None or isinstance(v, str) for v in values) and not pa.types.is_string(dtype):
        try:  # text forms (SQLite dates, numbers as text) through Arrow's parsers
            text = pa.array(values, pa.string())
            if isinstance(dtype, pa.JsonType):
                return pa.ExtensionArray.from_storage(JSON, text)
            if not isinstance(dtype, pa.UuidType):
                return text.cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    out: list[Any] = []
    for row, value in enumerate(values):
        try:
            out.append(None if value is None else _normalize(value, dtype))
        except (ValueError, TypeError, ArithmeticError, decimal.InvalidOperation) as exc:
            bad[row] = f"{name}: {value!r} is not a valid {dtype} ({exc})"
            out.append(None)
    storage = dtype.storage_type if isinstance(dtype, pa.ExtensionType) else dtype
    try:
        array = pa.array(out, storage)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        checked = []
        for row, value in enumerate(out):
            try:
                pa.array([value], storage)
                checked.append(value)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                bad[row] = f"{name}: {values[row]!r} does not fit {dtype} ({exc})"
                checked.append(None)
        array = pa.array(checked, storage)
    if isinstance(dtype, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(dtype, array)
    return array


def _normalize(value: Any, dtype: pa.DataType) -> Any:
    """A driver value in the Python form Arrow builds ``dtype`` from (or an error)."""
    if isinstance(dtype, pa.JsonType):
        if isinstance(value, bytes | bytearray):
            value = value.decode()
        if isinstance(value, str):
            json.loads(value)
            return value
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(dtype, pa.UuidType):
        if isinstance(value, uuid.UUID):
            return value.bytes
        if isinstance(value, bytes) and len(value) == 16:
            return value
        return uuid.UUID(str(value)).bytes
    if pa.types.is_string(dtype):
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode()
        if isinstance(value, float):
            return repr(value)
        return str(value)
    if pa.types.is_binary(dtype):
        return bytes(value) if not isinstance(value, str) else value.encode()
    if pa.types.is_boolean(dtype):
        if isinstance(value, int | decimal.Decimal) and value in (0, 1):
            return bool(value)
        raise ValueError("not a boolean")
    if pa.types.is_integer(dtype):
        if isinstance(value, float | decimal.Decimal) and value != int(value):
            raise ValueError("has a fraction")
        return int(value)
    if pa.types.is_decimal(dtype):
        number = decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
        if not number.is_finite():
            raise ValueError("not a finite number")
        quantum = decimal.Decimal(1).scaleb(-dtype.scale)
        exact = number.quantize(quantum, context=decimal.Context(prec=dtype.precision + 2))
        if exact != number:
            raise ValueError(f"has more than {dtype.scale} decimal places")
        return exact
    if pa.types.is_floating(dtype):
        return float(value)
    if pa.types.is_timestamp(dtype):
        moment = value if isinstance(value, dt.datetime) else _parse_datetime(value)
        if dtype.tz is not None and moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
        return moment
    if pa.types.is_date(dtype):
        if isinstance(value, dt.datetime):
            if value.time() != dt.time(0):
                raise ValueError("has a time of day")
            return value.date()
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if pa.types.is_time(dtype):
        if isinstance(value, dt.timedelta):  # MySQL TIME through pymysql
            if not dt.timedelta(0) <= value < dt.timedelta(days=1):
                raise ValueError("is outside 00:00..24:00")
            return (dt.datetime.min + value).time()
        return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
    return value


def _parse_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return dt.datetime.fromisoformat(str(value))
