"""Vectorized typing of text columns (CSV, TSV, text fields) with a sticky, widening schema.

Detection uses Arrow's regex kernels over whole arrays; casting uses Arrow casts. Python
loops run only on the error path, to name the exact values that failed a declared type.

Inference rules (chosen for exactness, not convenience):

- integers with a leading zero (``007``) stay text: they are identifiers, not numbers;
- integers beyond 64 bits become ``decimal(P,0)``; decimals keep every digit
  (``decimal(P,S)``, up to 76 digits), beyond that the column stays text;
- ``1e5`` style numbers are ``float64`` when every value of the column has at most 15
  significant digits (so each text round-trips through a double); otherwise text;
- ISO dates are ``date``; ISO timestamps without offset are naive ``timestamp``; with an
  offset (``Z``, ``+02:00``) they are instants in ``timestamptz`` (UTC); a mix of naive and
  offset values stays text;
- ``true``/``false`` (any case) are ``bool``; nothing else is guessed as boolean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.types import TIMESTAMP, TIMESTAMPTZ, decimal_type, widen

_INT = r"^[+-]?(0|[1-9][0-9]*)$"
_DEC = r"^[+-]?(0|[1-9][0-9]*)?\.[0-9]+$|^[+-]?(0|[1-9][0-9]*)\.$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+$"
_BOOL = r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
_TS_NAIVE = _TS + "$"
_TS_TZ = _TS + r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_LEADING_ZERO = r"^[+-]?0[0-9]"
_MIN_INTEGRAL_DIGITS = 18


def _all_match(values: pa.Array, pattern: str) -> bool:
    """Whether every value matches (true for no values)."""
    return bool(pc.all(pc.match_substring_regex(values, pattern), min_count=0).as_py())


def _fraction_digits(values: pa.Array) -> int:
    """Largest number of digits after the seconds' decimal point."""
    frac = pc.extract_regex(values, r"[0-9]{2}:[0-9]{2}:[0-9]{2}\.(?P<f>[0-9]+)")
    lengths = pc.utf8_length(pc.struct_field(frac, "f"))
    longest = pc.max(lengths).as_py()
    return int(longest or 0)


def _decimal_shape(values: pa.Array) -> tuple[int, int]:
    """(integral digits, scale) large enough for every value."""
    unsigned = pc.utf8_ltrim(values, "+-")
    dot = pc.find_substring(unsigned, ".")
    length = pc.utf8_length(unsigned)
    has_dot = pc.greater_equal(dot, 0)
    integral = pc.if_else(has_dot, dot, length)
    scale = pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)
    return int(pc.max(integral).as_py() or 0), int(pc.max(scale).as_py() or 0)


def _max_significant_digits(values: pa.Array) -> int:
    """Digits in the mantissa (an upper bound of significant digits)."""
    mantissa = pc.replace_substring_regex(values, r"[eE].*$", "")
    digits = pc.replace_substring_regex(mantissa, r"[^0-9]", "")
    return int(pc.max(pc.utf8_length(pc.utf8_ltrim(digits, "0"))).as_py() or 0)


def infer_type(values: pa.Array) -> pa.DataType:
    """The exact type of a string array's non-null values (``null`` if all are null)."""
    present = pc.drop_null(values)
    if len(present) == 0:
        return pa.null()
    if _all_match(present, _INT):
        digits, _ = _decimal_shape(present)
        if digits <= 18:
            return pa.int64()
        if digits == 19:
            try:
                pc.cast(present, pa.int64())
                return pa.int64()
            except pa.ArrowInvalid:
                pass
        return decimal_type(digits, 0) if digits <= 76 else pa.string()
    if _all_match(present, f"{_INT}|{_DEC}"):
        integral, scale = _decimal_shape(present)
        precision = max(integral, _MIN_INTEGRAL_DIGITS) + scale
        if precision > 38 >= integral + scale:
            precision = 38
        elif precision > 76:
            precision = integral + scale
        return decimal_type(precision, scale) if precision <= 76 else pa.string()
    if _all_match(present, f"{_INT}|{_DEC}|{_FLOAT}"):
        return pa.float64() if _max_significant_digits(present) <= 15 else pa.string()
    if _all_match(present, _BOOL):
        return pa.bool_()
    for pattern, dtype in ((_DATE, pa.date32()), (_TS_NAIVE, TIMESTAMP), (_TS_TZ, TIMESTAMPTZ)):
        if _all_match(present, pattern):
            if pa.types.is_timestamp(dtype) and _fraction_digits(present) > 6:
                dtype = pa.timestamp("ns", tz=dtype.tz)
            if _casts(present, dtype):
                return dtype
            return pa.string()
    if _all_match(present, f"{_DATE}|{_TS_NAIVE}") and _casts(present, TIMESTAMP):
        return TIMESTAMP
    return pa.string()


def _casts(values: pa.Array, dtype: pa.DataType) -> bool:
    try:
        pc.cast(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def cast_text(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    """Cast a string array to ``dtype`` exactly; raises ``pa.ArrowInvalid`` if any value fails."""
    if pa.types.is_string(dtype):
        return values
    if values.null_count == len(values):  # no values (or an empty array): nothing to convert
        return pa.nulls(len(values), dtype)
    if pa.types.is_null(dtype):
        raise pa.ArrowInvalid("a value where only nulls were expected")
    if pa.types.is_boolean(dtype):
        if not _all_match(pc.drop_null(values), _BOOL):
            raise pa.ArrowInvalid("not a boolean (expected true or false)")
        return pc.cast(pc.utf8_lower(values), dtype)
    if pa.types.is_integer(dtype) or pa.types.is_decimal(dtype):
        # Arrow's cast is strict about range and scale; it only accepts leading zeros
        result = pc.cast(values, dtype)
        if pc.any(pc.match_substring_regex(values, _LEADING_ZERO)).as_py():
            raise pa.ArrowInvalid("a number with a leading zero is an identifier, not a number")
        return result
    if pa.types.is_floating(dtype):
        present = pc.drop_null(values)
        if not _all_match(present, f"{_INT}|{_DEC}|{_FLOAT}"):
            raise pa.ArrowInvalid(f"not a valid {dtype}")
        if _max_significant_digits(present) > 15:
            raise pa.ArrowInvalid(f"more digits than {dtype} holds exactly")
    if isinstance(dtype, pa.ExtensionType):
        storage = pc.cast(values, dtype.storage_type)
        return pa.ExtensionArray.from_storage(dtype, storage)
    return pc.cast(values, dtype)


def failing_rows(values: pa.Array, dtype: pa.DataType) -> list[tuple[int, str]]:
    """Positions and texts of the values that do not cast to ``dtype`` (error path only)."""
    bad = []
    for i, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            cast_text(pa.array([value], pa.string()), dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad.append((i, value))
    return bad


@dataclass
class TypedBatch:
    """Result of typing a batch: good rows, plus the reasons for rows that were rejected."""

    batch: pa.RecordBatch
    rejected: dict[int, str] = field(default_factory=dict)


class TextTyper:
    """Types string columns batch by batch with a schema that only ever widens.

    Columns with a declared type (``hints``) are cast to it and rows whose value does not fit
    are rejected with a reason. Other columns are inferred: the current type is tried first,
    and if some value does not fit, the column is widened along the safe lattice (falling back
    to ``string``, which holds every text exactly).
    """

    def __init__(
        self,
        hints: dict[str, pa.DataType] | None = None,
        null_values: tuple[str, ...] = ("",),
        infer: bool = True,
    ) -> None:
        self.hints = dict(hints or {})
        self.null_values = null_values
        self.infer = infer
        self.types: dict[str, pa.DataType] = {}

    def _nullify(self, values: pa.Array) -> pa.Array:
        if not self.null_values:
            return values
        is_null = pc.is_in(values, value_set=pa.array(self.null_values, pa.string()))
        return pc.if_else(is_null, pa.scalar(None, pa.string()), values)

    def apply(self, batch: pa.RecordBatch) -> TypedBatch:
        """Type every string column of ``batch``; other columns pass through."""
        columns: list[pa.Array] = []
        rejected: dict[int, str] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if not pa.types.is_string(column.type):
                columns.append(column)
                continue
            values = self._nullify(column)
            if name in self.hints:
                typed, bad = self._cast_declared(name, values)
                for row, reason in bad:
                    rejected.setdefault(row, reason)
                columns.append(typed)
            elif self.infer:
                columns.append(self._cast_inferred(name, values))
            else:
                columns.append(values)
        typed_batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        return TypedBatch(typed_batch, rejected)

    def _cast_declared(self, name: str, values: pa.Array) -> tuple[pa.Array, list[tuple[int, str]]]:
        dtype = self.hints[name]
        try:
            return cast_text(values, dtype), []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = failing_rows(values, dtype)
            bad_rows = {row for row, _ in bad}
            mask = pa.array([i not in bad_rows for i in range(len(values))])
            cleaned = pc.if_else(mask, values, pa.scalar(None, pa.string()))
            reasons = [
                (row, f"column {name!r}: {text!r} is not a valid {dtype}") for row, text in bad
            ]
            return cast_text(cleaned, dtype), reasons

    def _cast_inferred(self, name: str, values: pa.Array) -> pa.Array:
        current = self.types.get(name)
        if current is not None and not pa.types.is_null(current):
            try:
                return cast_text(values, current)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        seen = infer_type(values)
        target = seen if current is None else widen(current, seen) or pa.string()
        self.types[name] = target
        try:
            return cast_text(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            self.types[name] = pa.string()
            return values
