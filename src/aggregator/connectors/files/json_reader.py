"""JSON Lines and JSON readers: Arrow's JSON parser, with exact numbers and a per-line fallback.

JSON Lines files are cut into blocks of complete lines (``block_size`` bytes) and each block
is parsed by ``pyarrow.json.read_json`` (vectorized). Exactness rules:

- numbers that a float64 cannot hold (integers of 19+ digits, decimals of 16+ digits) are
  found with a regular expression over the block's bytes; the member they belong to is
  remembered for the rest of the stream and its numbers are turned into JSON strings before
  parsing, then typed by ``TextTyper`` (``decimal(P,S)``, ``int64``...) for top-level columns.
  Nested members stay text holding the exact digits;
- when a block fails to parse (a broken line, a member whose JSON type changes, a big number
  inside an array), that block only is parsed line by line with ``json.loads``: broken lines
  are quarantined (``invalid JSON: ...``, position ``path:LINE``), members with conflicting
  JSON types become strings holding the JSON text of each value, and the valid lines are
  parsed again by Arrow.

JSON files (one top-level array of objects, or one object) are loaded whole into memory and
parsed by Arrow as one document; positions of their rows are ``path#N`` (N = 1-based element).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Generator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from aggregator.connectors.files.common import Piece, QuarantineBuilder, drop_rows
from aggregator.connectors.files.config import FileStreamConfig
from aggregator.connectors.files.listing import FileEntry, open_binary, utf8_chunks
from aggregator.core.inference import TextTyper

_KEY = rb'(?<!\\)"((?:[^"\\\n]|\\.)*)"\s*:\s*'
_BIG_NUMBER = rb"-?(?:[0-9]{19,}(?![0-9.eE])|(?=[0-9.]{17,})[0-9]+\.[0-9]+(?![0-9eE]))"
_BIG_MEMBER = re.compile(_KEY + _BIG_NUMBER)
_BIG_ELEMENT = re.compile(rb"[\[,]\s*" + _BIG_NUMBER + rb"\s*[,\]]")
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
# cheap prefilter: a big number needs a run of 17+ digits/dots; most blocks have none
_LONG_RUN = re.compile(rb"[0-9.]{17,}")


def has_long_number(block: bytes) -> bool:
    """Whether ``block`` may hold a number a float64 cannot represent exactly."""
    return _LONG_RUN.search(block) is not None


_INT64 = (-(2**63), 2**63 - 1)


def dump(value: Any) -> str:
    """JSON text of a value parsed with ``parse_float=Decimal`` (numbers keep their digits)."""
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{dump(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _has_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not _INT64[0] <= value <= _INT64[1]
    if isinstance(value, Decimal):
        return len(value.as_tuple().digits) >= 16
    if isinstance(value, dict):
        return any(_has_big(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_big(v) for v in value)
    return False


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    return type(value).__name__


class JsonTyping:
    """Per-stream state: exact-number members (sticky) and one ``TextTyper``."""

    def __init__(self, hints: dict[str, pa.DataType]) -> None:
        self.typer = TextTyper(hints=hints, null_values=())
        self.hints = hints
        self.exact_keys: set[bytes] = set()
        self.exact_names: set[str] = set()
        self.text_names: set[str] = set()
        self._quote: re.Pattern[bytes] | None = None

    def quote_big(self, block: bytes) -> bytes:
        """Turn numbers of exact members into JSON strings (C-speed regex over the block)."""
        found = set(_BIG_MEMBER.findall(block)) if has_long_number(block) else set()
        new = found - self.exact_keys
        if new:
            self.exact_keys |= new
            for key in new:
                self.exact_names.add(json.loads(b'"' + key + b'"'))
            alternatives = b"|".join(re.escape(k) for k in sorted(self.exact_keys))
            self._quote = re.compile(
                rb'((?<!\\)"(?:' + alternatives + rb')"\s*:\s*)(' + _NUMBER + rb")(?=\s*[,}\]])"
            )
        if self._quote is None:
            return block
        return self._quote.sub(rb'\1"\2"', block)

    def parse(self, text: bytes, document: bool = False) -> pa.Table | None:
        """Parse with Arrow; top-level timestamp members are re-read as text and typed by
        ``TextTyper`` instead (Arrow drops their UTC offsets), sticky for the stream."""
        explicit = None
        if self.text_names and not document:
            explicit = pa.schema([(n, pa.string()) for n in sorted(self.text_names)])
        table = _read_arrow(text, document, explicit)
        if table is None:
            return None
        fields = list(table.schema)
        if document:
            row_type = table.schema.field("rows").type.value_type
            fields = list(row_type) if pa.types.is_struct(row_type) else []
        stamps = {f.name for f in fields if pa.types.is_timestamp(f.type)}
        if not stamps:
            return table
        self.exact_names |= stamps
        if document:
            struct = pa.struct(
                [pa.field(f.name, pa.string()) if f.name in stamps else f for f in fields]
            )
            explicit = pa.schema([("rows", pa.list_(struct))])
        else:
            self.text_names |= stamps
            explicit = pa.schema([(n, pa.string()) for n in sorted(self.text_names)])
        return _read_arrow(text, document, explicit)

    def apply(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[int, str]]:
        """Type exact-number and hinted columns; other columns keep Arrow's JSON types."""
        names, columns = batch.schema.names, list(batch.columns)
        selected: list[int] = []
        for i, (name, column) in enumerate(zip(names, columns, strict=True)):
            if name in self.hints and column.type != self.hints[name]:
                try:
                    columns[i] = pc.cast(column, self.hints[name])
                    continue
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    try:
                        columns[i] = pc.cast(column, pa.string())
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        continue
            if pa.types.is_string(columns[i].type) and (
                name in self.exact_names or name in self.hints
            ):
                selected.append(i)
        if not selected:
            return pa.RecordBatch.from_arrays(columns, names=names), {}
        sub = pa.RecordBatch.from_arrays(
            [columns[i] for i in selected], [names[i] for i in selected]
        )
        typed = self.typer.apply(sub)
        for j, i in enumerate(selected):
            columns[i] = typed.batch.column(j)
        return pa.RecordBatch.from_arrays(columns, names=names), typed.rejected


def _read_arrow(
    text: bytes, newlines_in_values: bool = False, explicit: pa.Schema | None = None
) -> pa.Table | None:
    try:
        return pj.read_json(
            io.BytesIO(text),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(len(text) + 1, 1024)),
            parse_options=pj.ParseOptions(
                # the slower newline-tolerant chunker only when there is a newline at all
                newlines_in_values=newlines_in_values and b"\n" in text,
                explicit_schema=explicit,
                unexpected_field_behavior="infer",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


class JsonReader:
    """Reads one JSON Lines (or JSON) file into typed pieces (see the module docstring)."""

    def __init__(
        self,
        cfg: FileStreamConfig,
        entry: FileEntry,
        typing: JsonTyping,
        batch_size: int,
        skip: int = 0,
    ) -> None:
        self.cfg = cfg
        self.entry = entry
        self.typing = typing
        self.batch_size = batch_size
        self.skip = skip
        self.seen = 0  # records of the file consumed so far (skipped ones included)

    # -- JSON Lines ---------------------------------------------------------------------------

    def pieces(self) -> Generator[Piece, None, None]:
        """Pieces of a JSON Lines file, block by block."""
        with open_binary(self.cfg, self.entry) as handle:
            carry, line = b"", 1
            for chunk in utf8_chunks(handle, self.cfg.encoding, self.cfg.block_size):
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                yield from self._block(block, line)
                line += block.count(b"\n")
            if carry.strip():
                yield from self._block(carry, line)

    def _block(self, block: bytes, first_line: int) -> Generator[Piece, None, None]:
        quoted = self.typing.quote_big(block)
        big_element = has_long_number(quoted) and _BIG_ELEMENT.search(quoted) is not None
        table = None if big_element else self.typing.parse(quoted)
        if table is None:
            yield Piece(logs=[("info", f"{self.entry.key}: line-by-line parsing of a block")])
            records: list[tuple[str, Any]] = []
            for i, raw in enumerate(block.split(b"\n")):
                if raw.strip():
                    records.append((f"{self.entry.key}:{first_line + i}", raw))
            yield from self._fallback(records)
            return

        def positions() -> list[str]:
            return [
                f"{self.entry.key}:{first_line + i}"
                for i, raw in enumerate(block.split(b"\n"))
                if raw.strip()
            ]

        yield from self._emit(table, positions)

    def _emit(self, table: pa.Table, positions: Any) -> Generator[Piece, None, None]:
        """Typed pieces of a parsed table whose rows are the next records of the file."""
        skip = max(0, min(self.skip - self.seen, table.num_rows))
        self.seen += table.num_rows
        table = table.slice(skip)
        offset = skip
        for batch in table.to_batches(max_chunksize=self.batch_size):
            typed, rejected = self.typing.apply(batch)
            piece = Piece(batch=drop_rows(typed, rejected), records=batch.num_rows)
            if rejected:
                where = positions()
                quarantine = QuarantineBuilder()
                for row, reason in sorted(rejected.items()):
                    quarantine.add(reason, where[offset + row], _row_json(batch, row))
                piece.quarantined = quarantine.build()
            if piece.batch is not None and piece.batch.num_rows == 0:
                piece.batch = None
            offset += batch.num_rows
            yield piece

    def _fallback(self, records: list[tuple[str, Any]]) -> Generator[Piece, None, None]:
        """Records as (position, raw bytes or parsed value); broken ones are quarantined."""
        items: list[tuple[str, dict[str, Any] | None, str, Any]] = []
        for position, raw in records:
            index = self.seen
            self.seen += 1
            if index < self.skip:
                continue
            value = raw
            if isinstance(raw, bytes):
                try:
                    value = json.loads(raw, parse_float=Decimal)
                except ValueError as exc:
                    items.append((position, None, f"invalid JSON: {exc}", raw))
                    continue
            if not isinstance(value, dict):
                items.append((position, None, "invalid JSON: not an object", raw))
                continue
            items.append((position, value, "", raw))
        objects = [obj for _, obj, _, _ in items if obj is not None]
        table = self._objects_table(objects) if objects else None
        row = 0
        while items:
            group: list[tuple[str, dict[str, Any] | None, str, Any]] = []
            count = 0
            while items and (count < self.batch_size or items[0][1] is None):
                item = items.pop(0)
                group.append(item)
                count += item[1] is not None
            quarantine = QuarantineBuilder()
            batch = None
            if count and table is not None:
                batch = table.slice(row, count).combine_chunks().to_batches()[0]
                typed, rejected = self.typing.apply(batch)
                where = [p for p, obj, _, _ in group if obj is not None]
                bad = {r: (where[r], reason) for r, reason in rejected.items()}
                batch = drop_rows(typed, rejected)
            else:
                bad = {}
            r = 0
            for position, obj, reason, raw in group:
                if obj is None:
                    quarantine.add(reason, position, raw if isinstance(raw, bytes) else dump(raw))
                else:
                    if r in bad:
                        quarantine.add(bad[r][1], position, dump(obj))
                    r += 1
            row += count
            yield Piece(
                batch=batch if batch is not None and batch.num_rows else None,
                quarantined=quarantine.build(),
                records=len(group),
            )

    def _objects_table(self, objects: list[dict[str, Any]]) -> pa.Table:
        """Arrow table of parsed objects; conflicting members become JSON text."""
        categories: dict[str, set[str]] = {}
        for obj in objects:
            for key, value in obj.items():
                if value is not None:
                    categories.setdefault(key, set()).add(_category(value))
        as_text = {k for k, kinds in categories.items() if len(kinds) > 1}
        for attempt in range(3):
            lines = []
            for obj in objects:
                row = {}
                for key, value in obj.items():
                    textual = key in as_text or (
                        isinstance(value, dict | list) and (attempt > 0 or _has_big(value))
                    )
                    if attempt == 2 and value is not None:
                        textual = True
                    row[key] = dump(value) if textual and value is not None else value
                lines.append(dump(row).encode())
            text = self.typing.quote_big(b"\n".join(lines) + b"\n")
            table = self.typing.parse(text)
            if table is not None and table.num_rows == len(objects):
                return table
        raise AssertionError("unreachable: every value is text")  # pragma: no cover

    # -- JSON ---------------------------------------------------------------------------------

    def document_pieces(self) -> Generator[Piece, None, None]:
        """Pieces of a JSON file: a top-level array of objects, or one object (loaded whole)."""
        with open_binary(self.cfg, self.entry) as handle:
            data = b"".join(utf8_chunks(handle, self.cfg.encoding, self.cfg.block_size)).strip()
        if not data:
            return
        if data[:1] == b"[":
            wrapped = b'{"rows":' + data + b"}"
        elif data[:1] == b"{":
            wrapped = b'{"rows":[' + data + b"]}"
        else:
            wrapped = b""
        quoted = self.typing.quote_big(wrapped) if wrapped else b""
        table = None
        if quoted and not _BIG_ELEMENT.search(quoted[8:-1]):
            table = self.typing.parse(quoted, document=True)
        if table is not None and table.num_rows == 1:
            flat = pc.list_flatten(table.column("rows").combine_chunks())
            if len(flat) == 0:
                return
            if pa.types.is_struct(flat.type) and flat.null_count == 0:
                rows = pa.Table.from_batches([pa.RecordBatch.from_struct_array(flat)])
                key = self.entry.key
                yield from self._emit(rows, lambda: [f"{key}#{i + 1}" for i in range(len(flat))])
                return
        yield Piece(logs=[("info", f"{self.entry.key}: document parsed with json.loads")])
        try:
            value = json.loads(data, parse_float=Decimal)
        except ValueError as exc:
            if self.skip == 0:
                line = getattr(exc, "lineno", 1)
                reason = f"invalid JSON: {exc}"
                quarantine = QuarantineBuilder()
                quarantine.add(reason, f"{self.entry.key}:{line}", data)
                yield Piece(quarantined=quarantine.build(), records=1)
            return
        elements = value if isinstance(value, list) else [value]
        yield from self._fallback(
            [(f"{self.entry.key}#{i + 1}", v) for i, v in enumerate(elements)]
        )


def _row_json(batch: pa.RecordBatch, row: int) -> str:
    return json.dumps(batch.slice(row, 1).to_pylist()[0], default=str, ensure_ascii=False)
