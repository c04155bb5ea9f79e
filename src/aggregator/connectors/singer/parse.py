"""Singer messages -> Arrow batches, block by block.

The tap's stdout is read in chunks of complete lines. A regex (C speed) finds the lines that
are *not* RECORD messages; every run of RECORD lines between them is parsed by Arrow's JSON
reader in one call, with the stream's SCHEMA as explicit types — no Python per record.
Only the rare other messages (SCHEMA, STATE, BATCH...) go through ``json.loads``. When Arrow
rejects a block (a value that does not fit its declared type), that block is parsed line by
line (error path) and the failing lines are quarantined with their line number.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from aggregator.connectors.singer.schema import record_struct
from aggregator.core.inference import cast_text, failing_rows
from aggregator.core.messages import Quarantined, raw_text

# the start of a line that is not a RECORD message (the literal prefix keeps the scan fast)
_OTHER = re.compile(rb'\n\{\s*"type"\s*:\s*"(?!RECORD")')


class SingerParser:
    """Parses the output of a tap for one stream (see the module docstring)."""

    def __init__(self, stream: str, tap: str, airbyte: bool = False) -> None:
        self.stream = stream
        self.tap = tap
        #: Airbyte nests records as ``record.data`` with ``record.stream``
        self.airbyte = airbyte
        self.struct: pa.StructType = pa.struct([])
        self.casts: dict[str, pa.DataType] = {}
        self.line = 0
        self.records = 0

    def set_schema(self, schema: dict[str, Any]) -> None:
        """Apply a SCHEMA message of the stream."""
        self.struct, self.casts = record_struct(schema)

    def feed(self, chunk: bytes) -> Iterator[pa.RecordBatch | Quarantined | dict[str, Any]]:
        """Items of a chunk of complete lines: batches, quarantine, other messages (dicts)."""
        start = 0
        for match in _OTHER.finditer(b"\n" + chunk):
            begin = match.start()  # offset of the line in ``chunk``
            end = chunk.find(b"\n", begin) + 1 or len(chunk)
            if begin > start:
                yield from self._records(chunk[start:begin])
            line = chunk[begin:end]
            self.line += 1
            start = end
            try:
                message = json.loads(line)
            except ValueError as exc:
                yield self._quarantine([(self.line, line)], f"invalid JSON: {exc}")
                continue
            if message.get("type") == "SCHEMA" and message.get("stream") == self.stream:
                self.set_schema(message.get("schema") or {})
            yield message
        if start < len(chunk):
            yield from self._records(chunk[start:])

    def _parse(self, block: bytes, top_level: bool = False) -> pa.Table:
        if top_level:
            schema = pa.schema(list(self.struct))
        elif self.airbyte:
            record = pa.struct([("stream", pa.string()), ("data", self.struct)])
            schema = pa.schema([("record", record)])
        else:
            schema = pa.schema([("record", self.struct)])
        return pj.read_json(
            io.BytesIO(block),
            read_options=pj.ReadOptions(use_threads=True, block_size=max(len(block) + 1, 1 << 16)),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"
            ),
        )

    def _records(self, block: bytes) -> Iterator[pa.RecordBatch | Quarantined]:
        first = self.line + 1
        count = block.count(b"\n")
        self.line += count
        self.records += count
        try:
            table = self._parse(block)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            yield from self._fallback(block, first, str(exc))
            return
        yield from self._batches(table)

    def _batches(self, table: pa.Table) -> Iterator[pa.RecordBatch | Quarantined]:
        records = table.column("record").combine_chunks()
        streams = pc.struct_field(records, "stream") if self.airbyte else None
        if streams is None and "stream" in table.column_names:
            streams = table.column("stream").combine_chunks()
        if streams is not None:
            mine = pc.equal(streams, self.stream)
            if not pc.all(mine).as_py():
                records = records.filter(mine)
        if len(records) == 0:
            return
        if self.airbyte:
            records = pc.struct_field(records, "data")
        yield from self._cast(pa.RecordBatch.from_struct_array(records))

    def _cast(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch | Quarantined]:
        """Cast date/time text columns exactly; rows whose text does not cast are quarantined."""
        if not self.casts:
            yield batch
            return
        columns = list(batch.columns)
        bad: dict[int, str] = {}
        for i, name in enumerate(batch.schema.names):
            dtype = self.casts.get(name)
            if dtype is None or not pa.types.is_string(columns[i].type):
                continue
            try:
                columns[i] = cast_text(columns[i], dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                failed = failing_rows(columns[i], dtype)
                for row, text in failed:
                    bad.setdefault(row, f"column {name!r}: {text!r} is not a valid {dtype}")
                mask = pa.array([row not in {r for r, _ in failed} for row in range(len(batch))])
                columns[i] = cast_text(pc.if_else(mask, columns[i], None), dtype)
        typed = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        if bad:
            rows = sorted(bad)
            yield Quarantined.of(
                [bad[r] for r in rows],
                [f"{self.tap}:{self.stream}:record" for _ in rows],
                [json.dumps(typed.slice(r, 1).to_pylist()[0], default=str) for r in rows],
            )
            keep = pa.array([r not in bad for r in range(len(batch))])
            typed = typed.filter(keep)
        if typed.num_rows:
            yield typed

    def _fallback(
        self, block: bytes, first: int, error: str
    ) -> Iterator[pa.RecordBatch | Quarantined]:
        good: list[bytes] = []
        bad: list[tuple[int, bytes]] = []
        reasons: list[str] = []
        for i, line in enumerate(block.splitlines(keepends=True)):
            try:
                self._parse(line)
                good.append(line)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                bad.append((first + i, line))
                reasons.append(str(exc).removeprefix("JSON parse error: "))
        if good:
            try:
                yield from self._batches(self._parse(b"".join(good)))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                # values of an undeclared member disagree between lines
                lines = [(first + i, line) for i, line in enumerate(good)]
                yield self._quarantine(lines, f"untyped member values conflict: {exc}")
        if bad:
            yield Quarantined.of(
                reasons,
                [f"{self.tap}:{self.stream}:line {n}" for n, _ in bad],
                [raw_text(line.rstrip(b"\n")) for _, line in bad],
            )

    def _quarantine(self, lines: list[tuple[int, bytes]], reason: str) -> Quarantined:
        return Quarantined.of(
            [reason] * len(lines),
            [f"{self.tap}:{self.stream}:line {n}" for n, _ in lines],
            [raw_text(line.rstrip(b"\n")) for _, line in lines],
        )

    def batch_files(self, message: dict[str, Any]) -> Iterator[pa.RecordBatch | Quarantined]:
        """Records of a BATCH message (JSON Lines files, optionally gzipped, or Parquet)."""
        encoding = message.get("encoding") or {}
        for url in message.get("manifest") or []:
            path = str(url).removeprefix("file://")
            if encoding.get("format") == "parquet":
                import pyarrow.parquet as pq

                yield from pq.read_table(path).to_batches()
                continue
            opener = gzip.open if encoding.get("compression") == "gzip" else open
            with opener(path, "rb") as handle:
                data = handle.read()
            if data and not data.endswith(b"\n"):
                data += b"\n"
            self.records += data.count(b"\n")
            try:
                table = self._parse(data, top_level=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                lines = [(i + 1, line) for i, line in enumerate(data.splitlines(keepends=True))]
                yield self._quarantine(lines, f"BATCH file {path}: {exc}")
                continue
            for batch in table.to_batches():
                yield from self._cast(batch)
