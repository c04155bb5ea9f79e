"""Cleansing and PII steps: trim, case, regex replace, null-if, fill nulls, parse dates and
numbers with explicit formats, and mask / hash / tokenize / drop per column."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.types import type_from_string
from aggregator.transform import config as c
from aggregator.transform.base import (
    ROW,
    Context,
    Out,
    cast_values,
    failing_casts,
    reject_rows,
    require,
    sql_table,
)
from aggregator.transform.expr import quote
from aggregator.transform.steps import Step


class _PerColumn(Step):
    """Applies an Arrow kernel to each listed column."""

    def kernel(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        raise NotImplementedError

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        columns = list(self.cfg.columns)
        require(table, columns, self.label)
        for name in columns:
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, self.kernel(table.column(name)))
        return Out(table)


def all_ascii(values: pa.ChunkedArray) -> bool:
    """Whether every byte of the text's data buffers is ASCII (then the ``ascii_*`` kernels,
    about twice as fast, give the same result as the ``utf8_*`` ones)."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return False
    for chunk in values.chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and int(np.frombuffer(data, np.uint8).max()) > 127:
            return False
    return True


class Trim(_PerColumn):
    def kernel(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        if self.cfg.chars is None:
            if all_ascii(values):
                return pc.ascii_trim_whitespace(values)
            return pc.utf8_trim_whitespace(values)
        return pc.utf8_trim(values, characters=self.cfg.chars)


class Case(_PerColumn):
    def kernel(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        if self.cfg.to != "title" and all_ascii(values):
            return {"lower": pc.ascii_lower, "upper": pc.ascii_upper}[self.cfg.to](values)
        fn = {"lower": pc.utf8_lower, "upper": pc.utf8_upper, "title": pc.utf8_title}
        return fn[self.cfg.to](values)


class RegexReplace(_PerColumn):
    def kernel(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.replace_substring_regex(
            values, pattern=self.cfg.pattern, replacement=self.cfg.replacement
        )


class NullIf(_PerColumn):
    def kernel(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        match = pc.is_in(values, value_set=pa.array(self.cfg.values).cast(values.type))
        return pc.if_else(match, pa.scalar(None, values.type), values)


class FillNull(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, list(self.cfg.columns), self.label)
        for name, value in self.cfg.columns.items():
            values = table.column(name)
            filled = pc.fill_null(values, pa.scalar(value).cast(values.type))
            table = table.set_column(table.schema.get_field_index(name), name, filled)
        return Out(table)


class _Parse(Step):
    """Parses text columns; values that do not parse are rejected with the value."""

    def convert(self, values: pa.Array) -> pa.Array:
        raise NotImplementedError

    def target(self) -> str:
        raise NotImplementedError

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, self.cfg.columns, self.label)
        rejected: dict[int, str] = {}
        for name in self.cfg.columns:
            values = table.column(name).combine_chunks()
            try:
                result = self.convert(values)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                bad = {}
                for i in range(len(values)):  # error path: name each failing value
                    if values[i].is_valid:
                        try:
                            self.convert(values.slice(i, 1))
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                            bad[i] = (
                                f"{self.label}: column {name!r}: cannot parse "
                                f"{values[i].as_py()!r} as {self.target()}"
                            )
                out = reject_rows(table, bad)
                table, rejected = out.table, {**out.rejected, **rejected}
                result = self.convert(table.column(name).combine_chunks())
            table = table.set_column(table.schema.get_field_index(name), name, result)
        return Out(table, rejected)


class ParseDate(_Parse):
    def target(self) -> str:
        return f"{self.cfg.to} with format {self.cfg.format!r}"

    def convert(self, values: pa.Array) -> pa.Array:
        if (
            self.cfg.to == "date"
            and self.cfg.format == "%Y-%m-%d"
            and pa.types.is_string(values.type)
        ):
            try:  # ISO dates: Arrow's strict YYYY-MM-DD cast is ~6x faster than strptime
                return values.cast(pa.date32())
            except pa.ArrowInvalid:
                pass  # e.g. 2010-2-3, which strptime also takes
        parsed = pc.strptime(values, format=self.cfg.format, unit="us", error_is_null=False)
        if "%d" in self.cfg.format:
            _refuse_rolled_over_days(values, parsed, self.cfg.format)
        if self.cfg.to == "date":
            return parsed.cast(pa.date32())
        if self.cfg.to == "timestamptz":
            if parsed.type.tz is None:
                return pc.assume_timezone(parsed, "UTC")
            return parsed.cast(pa.timestamp("us", "UTC"))
        if parsed.type.tz is not None:
            return parsed.cast(pa.timestamp("us"))
        return parsed


def _refuse_rolled_over_days(values: pa.Array, parsed: pa.Array, fmt: str) -> None:
    """Arrow's strptime rolls a day past the month's end over (2024-02-30 -> 2024-03-01);
    raise :class:`pa.ArrowInvalid` instead. Such a value lands on day 1-3 and does not print
    back as it was read; only those are checked again with Python's strptime."""
    early = pc.fill_null(pc.less_equal(pc.day(parsed), 3), False)
    if not pc.any(early).as_py():
        return
    text = pc.filter(values, early)
    back = pc.strftime(pc.filter(parsed, early), format=fmt)
    for value in pc.filter(text, pc.fill_null(pc.not_equal(text, back), False)).to_pylist():
        try:
            datetime.strptime(value, fmt)
        except ValueError as exc:
            if "out of range" in str(exc):
                raise pa.ArrowInvalid(f"day out of range for month in {value!r}") from None


class ParseNumber(_Parse):
    def target(self) -> str:
        return str(self.cfg.to)

    def convert(self, values: pa.Array) -> pa.Array:
        if not pa.types.is_string(values.type):  # already typed by the source
            return cast_values(values, type_from_string(self.cfg.to))
        text = pc.utf8_trim_whitespace(values)
        if self.cfg.thousands_separator:
            text = pc.replace_substring(text, self.cfg.thousands_separator, "")
        if self.cfg.decimal_separator != ".":
            text = pc.replace_substring(text, self.cfg.decimal_separator, ".")
        return cast_values(text, type_from_string(self.cfg.to))


class Protect(Step):
    """Masks, hashes (salted SHA-256), tokenizes or drops the marked columns."""

    def __init__(self, cfg: c.ProtectStep, index: int) -> None:
        super().__init__(cfg, index)
        self.salt = cfg.salt or ""

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, list(self.cfg.columns), self.label)
        exprs: list[str] = []
        for name, how in self.cfg.columns.items():
            if how == "mask":
                at = table.schema.get_field_index(name)
                table = table.set_column(at, name, self._mask(table.column(name)))
            elif how == "drop":
                table = table.drop_columns([name])
            else:
                text = f"CAST({quote(name)} AS VARCHAR)"
                if how == "hash":
                    exprs.append(f"sha256($1 || {text}) AS {quote(name)}")
                else:
                    exprs.append(
                        f"'tok_' || left(sha256($1 || 'tok:' || {text}), 24) AS {quote(name)}"
                    )
        if exprs:
            sql = f"SELECT * REPLACE ({', '.join(exprs)}) FROM __agg_t"
            table = sql_table(ctx, table, sql, [self.salt])
        return Out(table)

    def _mask(self, values: pa.ChunkedArray) -> pa.Array:
        text = values.combine_chunks().cast(pa.string())
        fast = mask_ascii(text, self.cfg.keep_last, self.cfg.mask_char)
        if fast is not None:
            return fast
        length = pc.utf8_length(text)
        keep = self.cfg.keep_last
        visible_count = pc.if_else(pc.greater(length, keep), keep, 0)
        hidden = pc.subtract(length, visible_count)
        stars = pc.binary_repeat(pa.repeat(pa.scalar(self.cfg.mask_char), len(text)), hidden)
        tail = (
            pc.utf8_slice_codeunits(text, start=-keep)
            if keep
            else pa.repeat(pa.scalar(""), len(text))
        )
        tail = pc.if_else(pc.equal(visible_count, 0), "", tail)
        return pc.binary_join_element_wise(stars, tail, "")


def mask_ascii(text: pa.Array, keep: int, char: str) -> pa.Array | None:
    """The mask of ASCII text by byte writes (same result as the general kernels); ``None``
    when the text or the mask character is not ASCII."""
    if not char.isascii() or not isinstance(text, pa.StringArray) or len(text) == 0:
        return None
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + len(text) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    data = text.buffers()[2]
    source = np.frombuffer(data, np.uint8)[start:end] if data is not None else np.empty(0, np.uint8)
    if len(source) and int(source.max()) > 127:
        return None
    masked = np.full(end - start, ord(char), np.uint8)
    shifted = offsets - np.int32(start)
    lengths = np.diff(shifted)
    width = int(lengths[0])
    if keep and width > keep and bool((lengths == width).all()):  # fixed width: char(n)
        masked.reshape(-1, width)[:, width - keep :] = source.reshape(-1, width)[:, width - keep :]
    elif keep:  # the last ``keep`` bytes of every value longer than ``keep``
        ends = shifted[1:][lengths > keep].astype(np.intp)
        at = (ends[:, None] - np.arange(1, keep + 1)).ravel()
        masked[at] = source[at]
    out = pa.StringArray.from_buffers(len(text), pa.py_buffer(shifted), pa.py_buffer(masked))
    if text.null_count:
        return pc.if_else(pc.is_valid(text), out, pa.scalar(None, pa.string()))
    return out


BUILDERS: dict[str, Any] = {
    "trim": Trim,
    "case": Case,
    "regex_replace": RegexReplace,
    "null_if": NullIf,
    "fill_null": FillNull,
    "parse_date": ParseDate,
    "parse_number": ParseNumber,
    "protect": Protect,
}
__all__ = ["BUILDERS", "ROW", "failing_casts"]
