"""Streaming CSV/TSV reader: Arrow's CSV parser, columns read as bytes, typed by ``TextTyper``.

Every column is parsed as ``binary`` (no per-row Python): UTF-8 validity is checked with
one vectorized cast per column, and only when it fails are the failing rows located in
Python. The header row is read as the first data row (``column_names`` are generated), so
Arrow numbers header and data rows the same way, and ragged rows are reported by
``invalid_row_handler`` with their record number and raw text.

Line numbers (``path:LINE`` positions) are physical lines, 1-based, the header being line 1:
the line of a row is computed from the record numbers and from the newlines counted inside
the quoted values of the rows before it (a vectorized ``count_substring``). Approximation:
blank lines are skipped by Arrow without being numbered, so positions after a blank line in
the middle of a file are too small by the number of blank lines before them.

``skip`` (mid-file resume) skips the first ``skip`` data records of the file, loaded or
quarantined ones alike, in file order; they are parsed again but not yielded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from aggregator.connectors.files.common import Piece, QuarantineBuilder, drop_rows
from aggregator.connectors.files.config import FileStreamConfig
from aggregator.connectors.files.listing import FileEntry, is_utf8, open_binary
from aggregator.core.inference import TextTyper, TypedBatch
from aggregator.core.schema import normalize_column_names

_PREFIX = 64 * 1024


@dataclass(frozen=True)
class _BadRow:
    number: int
    text: str
    expected: int
    actual: int

    @property
    def size(self) -> int:
        return 1 + self.text.count("\n")


def _header_fields(cfg: FileStreamConfig, entry: FileEntry, delimiter: str) -> list[str] | None:
    """The first record of the file (Python's csv on a prefix), or ``None`` if it has none."""
    size = _PREFIX
    encoding = "utf-8-sig" if is_utf8(cfg.encoding) else cfg.encoding
    while True:
        with open_binary(cfg, entry) as handle:
            raw = handle.read(size)
            at_eof = len(raw) < size or not handle.read(1)
        text = raw.decode(encoding, errors="replace").removeprefix("\ufeff")
        first: list[str] | None = None
        complete = at_eof
        try:
            for row in csv.reader(
                io.StringIO(text, newline=""), delimiter=delimiter, quotechar=cfg.quote_char
            ):
                if not row:
                    continue
                if first is None:
                    first = row
                    continue
                complete = True
                break
        except csv.Error:
            line = text.splitlines()[0] if text.strip() else ""
            first, complete = line.split(delimiter) if line else None, True
        if first is None and at_eof:
            return None
        if complete and first is not None:
            return first
        size *= 4


class CsvReader:
    """Reads one CSV/TSV file into typed pieces (see the module docstring)."""

    def __init__(
        self,
        cfg: FileStreamConfig,
        entry: FileEntry,
        typer: TextTyper,
        batch_size: int,
        skip: int = 0,
        delimiter: str = ",",
    ) -> None:
        self.cfg = cfg
        self.entry = entry
        self.typer = typer
        self.batch_size = batch_size
        self.skip = skip
        self.delimiter = delimiter
        self.names: list[str] = []
        self.pending: list[_BadRow] = []
        self.next_record = 1
        self.next_line = 1
        self.data_start = 2 if cfg.header else 1

    def _handler(self, row: pcsv.InvalidRow) -> str:
        number = row.number if row.number is not None else self.next_record
        self.pending.append(_BadRow(number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    def _open(self, handle: IO[bytes], width: int) -> pcsv.CSVStreamingReader:
        internal = [f"f{i}" for i in range(width)]
        read = pcsv.ReadOptions(
            use_threads=False,
            block_size=self.cfg.block_size,
            column_names=internal,
            encoding="utf8" if is_utf8(self.cfg.encoding) else self.cfg.encoding,
        )
        parse = pcsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.cfg.quote_char,
            newlines_in_values=True,
            invalid_row_handler=self._handler,
        )
        convert = pcsv.ConvertOptions(
            column_types={name: pa.binary() for name in internal},
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        return pcsv.open_csv(
            handle, read_options=read, parse_options=parse, convert_options=convert
        )

    def pieces(self) -> Generator[Piece, None, None]:
        """Typed batches of at most ``batch_size`` rows, quarantined rows and row counts."""
        fields = _header_fields(self.cfg, self.entry, self.delimiter)
        if fields is None:
            return
        announced = False
        with open_binary(self.cfg, self.entry) as handle:
            reader = self._open(handle, len(fields))
            for batch in reader:
                if not announced:
                    announced = True
                    batch = self._take_header(batch, len(fields))
                    yield Piece(columns=list(self.names))
                for offset in range(0, batch.num_rows, self.batch_size):
                    piece = self._slice(batch.slice(offset, self.batch_size))
                    if piece is not None:
                        yield piece
        if not announced:
            self.names = normalize_column_names(
                [f.removeprefix("\ufeff") for f in fields]
                if self.cfg.header
                else [""] * len(fields)
            )
            yield Piece(columns=list(self.names))
        piece = self._flush()
        if piece is not None:
            yield piece

    def _take_header(self, batch: pa.RecordBatch, width: int) -> pa.RecordBatch:
        if not self.cfg.header or batch.num_rows == 0:
            self.names = normalize_column_names([""] * width)
            return batch
        raw = [batch.column(i)[0].as_py() for i in range(width)]
        names = [value.decode("utf-8", errors="replace") for value in raw]
        names[0] = names[0].removeprefix("\ufeff")
        self.names = normalize_column_names(names)
        self.next_line += 1 + sum(name.count("\n") for name in names)
        self.next_record += 1
        return batch.slice(1)

    def _position(self, line: int) -> str:
        return f"{self.entry.key}:{line}"

    def _render(self, data: pa.RecordBatch, row: int) -> bytes:
        """One row as CSV text (error path: raw text of rows that parsed but did not load)."""
        delim, quote = self.delimiter.encode(), self.cfg.quote_char.encode()
        out = []
        for column in data.columns:
            value: bytes = column[row].as_py() or b""
            if any(ch in value for ch in (delim, quote, b"\n", b"\r")):
                value = quote + value.replace(quote, quote + quote) + quote
            out.append(value)
        return delim.join(out)

    def _type(self, strings: pa.RecordBatch) -> TypedBatch:
        """``TextTyper.apply``, except that all-null columns stay untyped (``null``).

        Works around ``TextTyper`` pinning a column to ``string`` when a batch has no value
        for it (``cast_text`` to ``null`` fails), which would make a sparse column text forever.
        """
        before = dict(self.typer.types)
        typed = self.typer.apply(strings)
        columns = list(typed.batch.columns)
        changed = False
        for i, name in enumerate(self.names):
            column = columns[i]
            if (
                name not in self.typer.hints
                and pa.types.is_string(column.type)
                and column.null_count == len(column)
                and (before.get(name) is None or pa.types.is_null(before[name]))
            ):
                self.typer.types[name] = pa.null()
                columns[i] = pa.nulls(len(column), pa.null())
                changed = True
        if changed:
            typed.batch = pa.RecordBatch.from_arrays(columns, names=self.names)
        return typed

    def _slice(self, sl: pa.RecordBatch) -> Piece | None:
        m = sl.num_rows
        self.pending.sort(key=lambda b: b.number)
        assigned: list[_BadRow] = []
        end = self.next_record + m
        while self.pending and self.pending[0].number < end:
            assigned.append(self.pending.pop(0))
            end += 1
        counts = [pc.count_substring(column, "\n") for column in sl.columns]
        totals = [int(pc.sum(c).as_py() or 0) for c in counts]
        start_record, start_line = self.next_record, self.next_line
        self.next_record = end
        self.next_line += m + sum(totals) + sum(b.size for b in assigned)

        first_index = start_record - self.data_start
        skip_n = max(0, min(self.skip - first_index, m + len(assigned)))
        kept_bad = [b for b in assigned if b.number - self.data_start >= self.skip]
        valid_skip = skip_n - (len(assigned) - len(kept_bad))
        data = sl.slice(valid_skip)
        records = data.num_rows + len(kept_bad)

        bad_utf8: dict[int, str] = {}
        strings: list[pa.Array] = []
        for name, column in zip(self.names, data.columns, strict=True):
            try:
                strings.append(pc.cast(column, pa.string()))
            except pa.ArrowInvalid:
                for i, value in enumerate(column.to_pylist()):
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        bad_utf8.setdefault(i, f"invalid UTF-8 in column {name!r}")
        kept_rows = list(range(data.num_rows))
        if bad_utf8:
            kept_rows = [i for i in kept_rows if i not in bad_utf8]
            strings = [pc.cast(c, pa.string()) for c in drop_rows(data, bad_utf8).columns]
        problems: dict[int, str] = dict(bad_utf8)
        batch: pa.RecordBatch | None = None
        if kept_rows:
            # (Zero-row batches are not typed: TextTyper would pin their columns to string.)
            typed = self._type(pa.RecordBatch.from_arrays(strings, names=self.names))
            batch = drop_rows(typed.batch, typed.rejected)
            for row, reason in typed.rejected.items():
                problems[kept_rows[row]] = reason
        if not kept_bad and not problems:
            if records == 0:
                return None
            return Piece(
                batch=batch if batch is not None and batch.num_rows else None, records=records
            )

        # Error path: physical lines of every record of the slice.
        nonzero = [c for c, total in zip(counts, totals, strict=True) if total]
        newlines = [0] * m
        for c in nonzero:
            newlines = [a + b for a, b in zip(newlines, c.to_pylist(), strict=True)]
        valid_lines: list[int] = []
        bad_lines: dict[int, int] = {}
        by_number = {b.number: b for b in assigned}
        line, vi = start_line, 0
        for rec in range(start_record, end):
            if rec in by_number:
                bad_lines[rec] = line
                line += by_number[rec].size
            else:
                valid_lines.append(line)
                line += 1 + newlines[vi]
                vi += 1
        entries: list[tuple[int, str, bytes | str]] = [
            (bad_lines[b.number], f"expected {b.expected} fields, found {b.actual}", b.text)
            for b in kept_bad
        ]
        for row, reason in problems.items():
            entries.append((valid_lines[valid_skip + row], reason, self._render(data, row)))
        quarantine = QuarantineBuilder()
        for line_no, reason, raw in sorted(entries, key=lambda e: e[0]):
            quarantine.add(reason, self._position(line_no), raw)
        return Piece(
            batch=batch if batch is not None and batch.num_rows else None,
            quarantined=quarantine.build(),
            records=records,
        )

    def _flush(self) -> Piece | None:
        """Ragged rows after the last loaded row of the file."""
        quarantine = QuarantineBuilder()
        for bad in sorted(self.pending, key=lambda b: b.number):
            line = self.next_line
            self.next_line += bad.size
            self.next_record = bad.number + 1
            if bad.number - self.data_start < self.skip:
                continue
            reason = f"expected {bad.expected} fields, found {bad.actual}"
            quarantine.add(reason, self._position(line), bad.text)
        self.pending.clear()
        if not len(quarantine):
            return None
        return Piece(quarantined=quarantine.build(), records=len(quarantine))
