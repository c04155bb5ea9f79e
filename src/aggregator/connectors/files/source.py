"""The built-in ``files`` source: CSV, TSV, JSON Lines, JSON and Parquet files.

State (per stream) and resume::

    {"files": {path: mtime}, "current": {"path": p, "mtime": m, "rows": n},
     "cursor": v, "cursor_type": t, "cursor_floor": {"value": v0, "type": t0}}

``files`` holds the files finished in this cycle and ``current`` the position in the file
being read: a Checkpoint is emitted at the end of every file and every ``checkpoint_rows``
rows inside a file, so a re-run after a crash skips finished files and the first ``n``
records of the current one (unless its modification time changed). When the run ends, the
final Checkpoint keeps ``files`` for ``incremental_by: modified_at`` and for cursor
incremental reads (the next run reads new or modified files only: an unchanged file holds no
row it did not hold before, and those were either loaded or below the cursor); otherwise
``files`` is emptied so the next run reads everything again. ``cursor_floor`` is the saved
cursor the run filters on (``null`` on a first run), kept until the run ends so a resumed
run filters on the same value rather than on the max seen so far.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any, ClassVar

import pyarrow as pa

from aggregator.connectors.files.common import Piece
from aggregator.connectors.files.config import (
    FileFormat,
    FilesConfig,
    FileStreamConfig,
    IncrementalBy,
)
from aggregator.connectors.files.csv_reader import CsvReader
from aggregator.connectors.files.cursor import CursorFilter
from aggregator.connectors.files.json_reader import JsonReader, JsonTyping
from aggregator.connectors.files.listing import (
    FileEntry,
    file_format,
    list_files,
    require_files,
)
from aggregator.connectors.files.parquet_reader import parquet_pieces
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError
from aggregator.core.inference import TextTyper
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records


def _is_cursor_type(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_timestamp(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_integer(dtype)
        or pa.types.is_decimal(dtype)
    )


class _Readers:
    """Per-stream-read parsing state (one ``TextTyper`` for every file of the stream)."""

    def __init__(self, stream: str, cfg: FileStreamConfig, hints: dict[str, pa.DataType]) -> None:
        self.stream = stream
        self.cfg = cfg
        self.text_typer = TextTyper(hints=hints, null_values=tuple(cfg.null_values))
        self.json_typing = JsonTyping(hints)

    def pieces(self, entry: FileEntry, batch_size: int, skip: int) -> Generator[Piece, None, None]:
        fmt = file_format(self.stream, self.cfg, entry)
        if fmt in (FileFormat.CSV, FileFormat.TSV):
            delimiter = self.cfg.delimiter or ("\t" if fmt is FileFormat.TSV else ",")
            reader = CsvReader(self.cfg, entry, self.text_typer, batch_size, skip, delimiter)
            return reader.pieces()
        if fmt is FileFormat.PARQUET:
            return parquet_pieces(self.cfg, entry, batch_size, skip)
        json_reader = JsonReader(self.cfg, entry, self.json_typing, batch_size, skip)
        return json_reader.pieces() if fmt is FileFormat.JSONL else json_reader.document_pieces()


class FilesSource(Source[FilesConfig]):
    """Reads local or fsspec files (globs, compression, encodings) as typed Arrow batches."""

    name: ClassVar[str] = "files"
    config_model = FilesConfig
    description: ClassVar[str] = (
        "CSV, TSV, JSON Lines, JSON and Parquet files: local paths, globs or fsspec URLs"
    )

    def _stream_config(self, name: str) -> FileStreamConfig:
        for cfg in self.config.streams:
            if cfg.name == name:
                return cfg
        known = ", ".join(s.name for s in self.config.streams)
        raise ConfigError(f"unknown stream {name!r} for the files source; configured: {known}")

    def check(self) -> CheckResult:
        """Every stream's path matches at least one file."""
        total = 0
        for cfg in self.config.streams:
            try:
                entries = list_files(cfg)
            except (OSError, ValueError) as exc:
                return CheckResult(False, f"stream {cfg.name!r}: cannot list {cfg.path!r}: {exc}")
            if not entries:
                return CheckResult(False, f"stream {cfg.name!r}: no file matches {cfg.path!r}")
            total += len(entries)
        return CheckResult(True, f"{len(self.config.streams)} stream(s), {total} file(s) found")

    def stream_names(self) -> list[str]:
        """The configured streams (no file is opened)."""
        return [cfg.name for cfg in self.config.streams]

    def discover(self) -> Catalog:
        """One stream per configured stream, typed from the first batch of its first file."""
        return Catalog(tuple(self._discover_stream(cfg) for cfg in self.config.streams))

    def _discover_stream(self, cfg: FileStreamConfig) -> Stream:
        entries = require_files(cfg.name, cfg)
        readers = _Readers(cfg.name, cfg, {})
        schema: pa.Schema | None = None
        header: list[str] | None = None
        for entry in entries:
            with contextlib.closing(readers.pieces(entry, 65_536, 0)) as pieces:
                for piece in pieces:
                    if piece.columns is not None and header is None:
                        header = piece.columns
                    if piece.batch is not None:
                        schema = piece.batch.schema
                        break
            if schema is not None:
                break
        if schema is None:
            schema = pa.schema([(name, pa.string()) for name in header or []])
        return _file_stream(cfg, entries, schema)

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield the stream's rows, resuming after ``state`` (see the module docstring)."""
        cfg = self._stream_config(stream.name)
        entries = require_files(stream.name, cfg)
        state = dict(state or {})
        incremental = stream.sync_mode is SyncMode.INCREMENTAL
        # without a cursor column, an incremental files stream is tracked per file
        by_mtime = cfg.incremental_by is IncrementalBy.MODIFIED_AT or (
            incremental and not stream.cursor_field
        )
        previous: dict[str, Any] = dict(state.get("files") or {})
        current: dict[str, Any] = dict(state.get("current") or {})
        cursor: CursorFilter | None = None
        floor: dict[str, Any] | None = None
        if stream.cursor_field and stream.sync_mode is SyncMode.INCREMENTAL:
            floor = state.get("cursor_floor")
            if "cursor_floor" not in state and state.get("cursor") is not None:
                floor = {"value": state["cursor"], "type": state.get("cursor_type")}
            best = None
            if state.get("cursor") is not None:
                best = {"value": state["cursor"], "type": state.get("cursor_type")}
            cursor = CursorFilter(stream.name, stream.cursor_field, floor, best)
        readers = _Readers(stream.name, cfg, dict(stream.column_types))
        done: dict[str, str] = {}
        described = False  # StreamInfo goes out with the first batch (its schema is needed)

        def checkpoint(position: dict[str, Any] | None, final: bool = False) -> Checkpoint:
            files = dict(done) if (by_mtime or cursor is not None or not final) else {}
            result: dict[str, Any] = {"files": files}
            if position is not None:
                result["current"] = position
            if cursor is not None:
                result.update(cursor.state())
                if not final:
                    result["cursor_floor"] = floor
            return Checkpoint(result)

        for entry in entries:
            if previous.get(entry.key) == entry.mtime:
                done[entry.key] = entry.mtime
                continue
            skip = 0
            if current.get("path") == entry.key:
                if current.get("mtime") == entry.mtime:
                    skip = int(current.get("rows") or 0)
                else:
                    yield Log("warning", f"stream {stream.name!r}: {entry.key} changed; rereading")
            resumed = f" from row {skip + 1}" if skip else ""
            yield Log("info", f"stream {stream.name!r}: reading {entry.key}{resumed}")
            rows, since = skip, 0
            for piece in readers.pieces(entry, stream.batch_size, skip):
                for level, message in piece.logs:
                    yield Log(level, f"stream {stream.name!r}: {message}")
                if piece.columns is not None and cursor is not None:
                    cursor.require(piece.columns, entry.key)
                if piece.batch is not None:
                    batch = piece.batch
                    if not described:
                        described = True
                        yield _file_stream(cfg, entries, batch.schema).info()
                    if cursor is not None:
                        batch = cursor.apply(batch, entry.key)
                    if batch.num_rows:
                        yield Records(batch)
                if piece.quarantined is not None:
                    yield Quarantined(piece.quarantined.rows)
                rows += piece.records
                since += piece.records
                if since >= cfg.checkpoint_rows:
                    since = 0
                    yield checkpoint({"path": entry.key, "mtime": entry.mtime, "rows": rows})
            done[entry.key] = entry.mtime
            yield checkpoint(None)
        yield checkpoint(None, final=True)


def _file_stream(cfg: FileStreamConfig, entries: list[FileEntry], schema: pa.Schema) -> Stream:
    """The stream of ``entries`` typed as ``schema``; files carry no native types beyond the
    format's own (Parquet) or what was inferred (CSV, JSON), given as Arrow type names."""
    fmt = file_format(cfg.name, cfg, entries[0])
    size = sum(e.size for e in entries)
    return Stream(
        name=cfg.name,
        schema=schema,
        primary_key=tuple(cfg.primary_key),
        cursor_candidates=tuple(f.name for f in schema if _is_cursor_type(f.type)),
        sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
        metadata={
            "files": len(entries),
            "bytes": size,
            "format": fmt.value,
            "declared_types": {f.name: str(f.type) for f in schema},
            "types_from": "file" if fmt.value == "parquet" else "inferred",
            "estimated_rows": None,
            "estimated_bytes": size,
        },
    )
