"""File destination: Parquet, CSV or JSON Lines files on a local path or any fsspec URL.

Layout::

    <path>/<table>/[<col>=<value>/]part-<seq:08d>-<n:04d>.<ext>
    <path>/<table>__quarantine/part-<seq:08d>-<n:04d>.jsonl
    <path>/_aggregator_state/<pipeline>/<stream>.json          {"state", "seq", "files"}
    <path>/_aggregator_state/<pipeline>/<stream>.schema.json   {"columns": [...]}

Correctness rests on deterministic names and ordering. ``seq`` counts the committed
checkpoints of a stream; the files of the next commit are named with ``seq + 1``. They are
written under hidden temporary names (``.part-...tmp``, ignored by Parquet/Hive readers),
renamed to their final names at commit, and only *then* is the state file replaced
(atomically, temp + rename). After a crash, files with a ``seq`` above the committed one
and temporary files are leftovers of the crashed run: they are deleted when a writer opens,
so a replay rewrites the same names instead of duplicating rows.

``replace`` writes into ``<table>.__staging__<run>/`` and at ``finish`` swaps directories
(old table renamed away, staging renamed in, old deleted), then records the state; a crash
in the middle of the swap is repaired on the next open. ``merge`` cannot upsert files in
place: new rows are spooled (as Parquet) and at ``finish`` the existing table and the new
rows are read, deduplicated (the last row per key wins) and written as a replace. This is
the slow path: it rewrites the whole table and holds it in memory.

Exactness: Parquet keeps Arrow types (decimals, timestamps with time zone, JSON and UUID
extension types). CSV and JSON Lines write decimals as exact text, timestamps as ISO-8601
(``+00:00`` for instants), UUIDs canonically, binary as base64, lists/structs as JSON
(CSV) or nested JSON (JSONL); the recorded schema says how to read them back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from aggregator.connectors.file_destination.config import FileDestinationConfig
from aggregator.connectors.file_destination.formats import (
    HIVE_NULL,
    PART,
    conform_table,
    csv_friendly,
    jsonl_bytes,
    read_csv_exact,
    read_files,
    read_jsonl_exact,
)
from aggregator.connectors.sdk import (
    CheckResult,
    Destination,
    DestinationSession,
    StreamWriter,
)
from aggregator.connectors.sqlite.types import json_text, jsonable, text_form
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.types import schema_from_json, schema_to_json

_STAGING = ".__staging__"
_OLD = ".__old__"
_EXTENSIONS = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "xz": ".xz"}
#: Parquet dictionary pages stop (the column chunk goes on plain) at 64 KiB instead of 1 MiB:
#: low-cardinality columns still get dictionaries, while unique keys, amounts and instants no
#: longer spend 60% of the writer's time hashing values into dictionaries that are dropped
#: (wide 2M rows: 5.8 -> 2.4 CPU s, files 22% smaller; ADR 0002).
_DICTIONARY_LIMIT = 64 * 1024
_LOCAL = pafs.LocalFileSystem()


def _is_local(fs: Any) -> bool:
    """True for fsspec's local file system (paths are plain OS paths)."""
    return isinstance(fs, LocalFileSystem)


class FileDestination(Destination[FileDestinationConfig]):
    """Writes each stream as a directory of Parquet, CSV or JSON Lines files."""

    name: ClassVar[str] = "files"
    config_model = FileDestinationConfig
    description: ClassVar[str] = "Parquet, CSV or JSON Lines files (local or fsspec URL)"

    def check(self) -> CheckResult:
        """Create the base directory and write and delete a probe file."""
        try:
            fs, root = fsspec.core.url_to_fs(self.config.path)
            fs.makedirs(root, exist_ok=True)
            probe = f"{root.rstrip('/')}/.aggregator-check-{uuid.uuid4().hex}"
            with fs.open(probe, "wb") as f:
                f.write(b"ok")
            fs.rm(probe)
        except (OSError, ValueError, ImportError) as exc:
            return CheckResult(False, f"cannot write to {self.config.path!r}: {exc}")
        return CheckResult(True, f"{self.config.path!r} is writable")

    def open(self, pipeline: str) -> DestinationSession:
        """Open the base directory for ``pipeline``."""
        fmt = self.config.format
        if fmt != "parquet" and self.config.compression not in (None, *_EXTENSIONS):
            raise ConfigError(
                f"compression {self.config.compression!r} is not supported for {fmt} "
                f"(use one of {', '.join(_EXTENSIONS)})"
            )
        return FileSession(self.config, pipeline)


def _name(text: str) -> str:
    """A file-name-safe form of a stream name."""
    return urllib.parse.quote(text, safe="")


class FileSession(DestinationSession):
    """State and schema files under ``_aggregator_state/<pipeline>/``."""

    def __init__(self, config: FileDestinationConfig, pipeline: str) -> None:
        self.config = config
        self.fs, root = fsspec.core.url_to_fs(config.path)
        self.root = root.rstrip("/") or "/"
        self.pipeline = pipeline
        self.state_dir = f"{self.root}/_aggregator_state/{_name(pipeline)}"
        self.fs.makedirs(self.state_dir, exist_ok=True)

    def state_path(self, stream: str) -> str:
        """Path of the state document of ``stream``."""
        return f"{self.state_dir}/{_name(stream)}.json"

    def schema_path(self, stream: str) -> str:
        """Path of the schema document of ``stream``."""
        return f"{self.state_dir}/{_name(stream)}.schema.json"

    def read_json(self, path: str) -> Any:
        """A JSON document, or ``None`` when it does not exist."""
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))

    def write_json(self, path: str, doc: Any) -> None:
        """Replace a JSON document atomically (temp file + rename)."""
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(tmp, "wb") as f:
            f.write(json.dumps(doc, indent=1).encode("utf-8"))
        self.fs.mv(tmp, path)

    def state_doc(self, stream: str) -> dict[str, Any]:
        """``{"state", "seq", "files"}`` of ``stream`` (seq 0 before the first commit)."""
        doc = self.read_json(self.state_path(stream))
        if not isinstance(doc, dict):
            return {"state": None, "seq": 0, "files": []}
        return doc

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last committed for ``stream``."""
        state: dict[str, Any] | None = self.state_doc(stream)["state"]
        return state

    def reset_state(self, stream: str | None = None) -> None:
        """Forget the state; ``seq`` is kept so later files never reuse existing names."""
        if stream is not None:
            streams = [stream]
        else:
            streams = []
            for path in self.fs.ls(self.state_dir, detail=False):
                base = str(path).rsplit("/", 1)[-1]
                if base.endswith(".json") and not base.endswith(".schema.json"):
                    streams.append(urllib.parse.unquote(base[: -len(".json")]))
        for name in streams:
            doc = self.state_doc(name)
            if doc["state"] is not None:
                self.write_json(self.state_path(name), {**doc, "state": None})

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer for ``stream`` (cleans up what a crashed run left behind)."""
        return FileWriter(self, stream, run_id)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class _Part:
    """One file being written (under its temporary name)."""

    tmp: str
    final: str
    schema: pa.Schema
    handle: Any  # None for Parquet on a local disk (pyarrow writes the file natively)
    writer: Any = None
    rows: int = 0


@dataclass
class _Pending:
    """Files closed since the last commit: (temporary, final) paths."""

    renames: list[tuple[str, str]] = field(default_factory=list)


class FileWriter(StreamWriter):
    """Writes one stream's files; a commit renames them into place, then records state."""

    def __init__(self, session: FileSession, stream: ConfiguredStream, run_id: str) -> None:
        self.session = session
        self.fs = session.fs
        self.config = session.config
        self.stream = stream
        self.run_id = run_id
        self.mode = stream.write_mode
        if self.mode is WriteMode.MERGE and not stream.primary_key:
            raise ConfigError(f"stream {stream.name!r}: merge needs a primary_key")
        root = session.root
        self.table_dir = f"{root}/{stream.table}"
        self.quarantine_dir = f"{root}/{stream.table}__quarantine"
        self.staging_dir = f"{root}/{stream.table}{_STAGING}{_name(run_id)}"
        doc = session.state_doc(stream.name)
        self.seq: int = int(doc["seq"])
        self._state: dict[str, Any] | None = doc["state"]
        stored = session.read_json(session.schema_path(stream.name))
        self._schema: pa.Schema | None = (
            schema_from_json(stored["columns"])
            if stored and self.fs.exists(self.table_dir)
            else None
        )
        self._schema_dirty = False
        self._started = False
        self._n = 0
        self._open: dict[str, _Part] = {}
        self._pending = _Pending()
        self._pending_state: dict[str, Any] | None = None
        self._spool: list[str] = []
        self._recover()

    # ------------------------------------------------------------------ recovery

    def _siblings(self, marker: str) -> list[str]:
        prefix = f"{self.stream.table}{marker}"
        if not self.fs.exists(self.session.root):
            return []
        return sorted(
            str(p)
            for p in self.fs.ls(self.session.root, detail=False)
            if str(p).rstrip("/").rsplit("/", 1)[-1].startswith(prefix)
        )

    def _recover(self) -> None:
        """Undo what a crashed run left: half swaps, staging dirs, uncommitted files."""
        old = self._siblings(_OLD)
        if old and not self.fs.exists(self.table_dir):
            self.fs.mv(old[-1], self.table_dir, recursive=True)
            old = old[:-1]
        for path in old + self._siblings(_STAGING):
            self.fs.rm(path, recursive=True)
        for directory in (self.table_dir, self.quarantine_dir):
            if not self.fs.exists(directory):
                continue
            for path in self.fs.find(directory):
                base = str(path).rsplit("/", 1)[-1]
                m = PART.match(base)
                if base.endswith(".tmp") or (m is not None and int(m.group(1)) > self.seq):
                    self.fs.rm(path)

    # ------------------------------------------------------------------ schema

    def current_schema(self) -> pa.Schema | None:
        """The schema last recorded for the stream."""
        return self._schema

    def apply_schema(self, schema: pa.Schema) -> None:
        """Record the new schema; the next files are written with it."""
        if self.config.partition_by and self.config.partition_by not in schema.names:
            raise ConfigError(
                f"stream {self.stream.name!r}: partition column "
                f"{self.config.partition_by!r} is not in the schema"
            )
        if self._schema is not None and self._schema.equals(schema) and self._started:
            return
        self._close_parts()
        self._schema = schema
        self._schema_dirty = True
        self._started = True

    # ------------------------------------------------------------------ writing

    @property
    def _ext(self) -> str:
        fmt = self.config.format
        if fmt == "parquet":
            return ".parquet"
        return f".{fmt}" + _EXTENSIONS.get(self.config.compression or "", "")

    @property
    def _data_dir(self) -> str:
        if self.mode is WriteMode.MERGE:
            return f"{self.staging_dir}/_new"
        if self.mode is WriteMode.REPLACE:
            return self.staging_dir
        return self.table_dir

    def _new_name(self, directory: str, ext: str) -> tuple[str, str]:
        name = f"part-{self.seq + 1:08d}-{self._n:04d}{ext}"
        self._n += 1
        return f"{directory}/.{name}.tmp", f"{directory}/{name}"

    def _open_part(self, directory: str, schema: pa.Schema, fmt: str) -> _Part:
        self.fs.makedirs(directory, exist_ok=True)
        ext = ".parquet" if fmt == "parquet" else self._ext
        tmp, final = self._new_name(directory, ext)
        if fmt == "parquet":
            options: dict[str, Any] = {
                "compression": self.config.compression or "zstd",
                "dictionary_pagesize_limit": _DICTIONARY_LIMIT,
            }
            if _is_local(self.fs):
                # pyarrow's own file: no Python file object whose every write takes the GIL
                # from the threads that read the source
                writer = pq.ParquetWriter(tmp, schema, filesystem=_LOCAL, **options)
                return _Part(tmp, final, schema, None, writer)
            handle = self.fs.open(tmp, "wb")
            return _Part(tmp, final, schema, handle, pq.ParquetWriter(handle, schema, **options))
        compression = self.config.compression
        handle = self.fs.open(tmp, "wb", compression=compression)
        return _Part(tmp, final, schema, handle)

    def _part(self, directory: str, schema: pa.Schema, fmt: str) -> _Part:
        part = self._open.get(directory)
        if part is not None and not part.schema.equals(schema):
            self._close_part(directory)
            part = None
        if part is None:
            part = self._open_part(directory, schema, fmt)
            self._open[directory] = part
        return part

    def _close_part(self, directory: str) -> None:
        part = self._open.pop(directory)
        if part.writer is not None:
            part.writer.close()
        if part.handle is not None:
            part.handle.close()
        self._pending.renames.append((part.tmp, part.final))

    def _close_parts(self) -> None:
        for directory in list(self._open):
            self._close_part(directory)

    def _append(self, part: _Part, batch: pa.RecordBatch, fmt: str) -> None:
        if fmt == "parquet":
            part.writer.write_batch(batch)
        elif fmt == "csv":
            buffer = io.BytesIO()
            options = pacsv.WriteOptions(include_header=part.rows == 0)
            pacsv.write_csv(csv_friendly(batch), buffer, write_options=options)
            part.handle.write(buffer.getvalue())
        else:
            part.handle.write(jsonl_bytes(batch))
        part.rows += batch.num_rows

    def write(self, batch: pa.RecordBatch) -> None:
        """Stage ``batch`` into the files of the next commit."""
        if batch.num_rows == 0:
            return
        if self._schema is None or not self._started:
            self.apply_schema(batch.schema if self._schema is None else self._schema)
        if self.mode is WriteMode.MERGE:
            part = self._part(self._data_dir, batch.schema, "parquet")
            self._append(part, batch, "parquet")
            return
        for directory, group in self._partitions(self._data_dir, batch):
            self._append(
                self._part(directory, group.schema, self.config.format), group, self.config.format
            )

    def _partitions(self, base: str, batch: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
        column = self.config.partition_by
        if not column:
            return [(base, batch)]
        index = batch.schema.get_field_index(column)
        keys = pc.fill_null(text_form(batch.column(index)), HIVE_NULL)
        rest = batch.remove_column(index)
        groups = []
        for value in pc.unique(keys).to_pylist():
            mask = pc.equal(keys, pa.scalar(value, pa.string()))
            segment = f"{column}={urllib.parse.quote(value, safe='')}"
            groups.append((f"{base}/{segment}", rest.filter(mask)))
        return groups

    def quarantine(self, rows: pa.Table) -> None:
        """Stage quarantined rows into a JSON Lines file of the next commit."""
        if rows.num_rows == 0:
            return
        self.fs.makedirs(self.quarantine_dir, exist_ok=True)
        tmp, final = self._new_name(self.quarantine_dir, ".jsonl")
        lines = []
        stamp = _utc_now()
        for reason, position, raw in zip(
            rows.column("reason").to_pylist(),
            rows.column("position").to_pylist(),
            rows.column("raw").to_pylist(),
            strict=True,
        ):
            lines.append(
                json.dumps(
                    {
                        "run_id": self.run_id,
                        "stream": self.stream.name,
                        "reason": reason,
                        "position": position,
                        "raw": raw,
                        "quarantined_at": stamp,
                    },
                    ensure_ascii=False,
                )
            )
        with self.fs.open(tmp, "wb") as f:
            f.write(("\n".join(lines) + "\n").encode("utf-8"))
        self._pending.renames.append((tmp, final))

    # ------------------------------------------------------------------ committing

    def _publish(self) -> list[str]:
        """Close open files and rename everything staged to its final name."""
        self._close_parts()
        finals = []
        for tmp, final in self._pending.renames:
            self.fs.mv(tmp, final)
            finals.append(final)
        self._pending = _Pending()
        return finals

    def _relative(self, paths: list[str]) -> list[str]:
        prefix = self.session.root.rstrip("/") + "/"
        return [p[len(prefix) :] if p.startswith(prefix) else p for p in paths]

    def _record(self, state: dict[str, Any] | None, files: list[str]) -> None:
        """Write the schema (if changed), then the state document: the commit point."""
        if self._schema_dirty and self._schema is not None:
            self.session.write_json(
                self.session.schema_path(self.stream.name),
                {"columns": schema_to_json(self._schema)},
            )
            self._schema_dirty = False
        if state is not None:
            self._state = state
        self.seq += 1
        self._n = 0
        self.session.write_json(
            self.session.state_path(self.stream.name),
            {"state": self._state, "seq": self.seq, "files": self._relative(files)},
        )

    def commit(self, state: dict[str, Any] | None) -> None:
        """Rename staged files into place, then record ``state`` (replace/merge: at finish)."""
        if self.mode is not WriteMode.APPEND:
            if state is not None:
                self._pending_state = state
            finals = self._publish()
            if self.mode is WriteMode.MERGE:
                self._spool.extend(f for f in finals if f.startswith(self._data_dir + "/"))
            return
        files = self._publish()
        data = [f for f in files if f.startswith(self.table_dir + "/")]
        self._record(state, data)

    def finish(self, state: dict[str, Any] | None) -> None:
        """Commit the rest; replace and merge swap the new table directory in."""
        if self.mode is WriteMode.APPEND:
            self.commit(state)
            return
        self.commit(state)
        state = self._pending_state
        if not self._started:
            if state is not None:
                self._record(state, [])
            return
        if self.mode is WriteMode.MERGE:
            self._merge_into_staging()
        self.fs.makedirs(self.staging_dir, exist_ok=True)
        files = [
            str(p) for p in self.fs.find(self.staging_dir) if PART.match(str(p).rsplit("/", 1)[-1])
        ]
        self._swap()
        prefix = self.staging_dir + "/"
        moved = [self.table_dir + "/" + f[len(prefix) :] for f in files]
        self._record(state, moved)
        self._started = False

    def _swap(self) -> None:
        """Old table away, staging in, old deleted (a crash in between is repaired on open)."""
        old = f"{self.table_dir}{_OLD}{_name(self.run_id)}"
        had_table = self.fs.exists(self.table_dir)
        if had_table:
            self.fs.mv(self.table_dir, old, recursive=True)
        self.fs.mv(self.staging_dir, self.table_dir, recursive=True)
        if had_table:
            self.fs.rm(old, recursive=True)

    def abort(self) -> None:
        """Discard everything staged since the last commit."""
        for part in self._open.values():
            if part.writer is not None:
                with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                    part.writer.close()
            if part.handle is not None:
                part.handle.close()
            if self.fs.exists(part.tmp):
                self.fs.rm(part.tmp)
        self._open.clear()
        for tmp, _ in self._pending.renames:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
        self._pending = _Pending()
        if self.mode is not WriteMode.APPEND and self.fs.exists(self.staging_dir):
            self.fs.rm(self.staging_dir, recursive=True)
        self._spool.clear()
        self._n = 0

    # ------------------------------------------------------------------ merge

    def _merge_into_staging(self) -> None:
        """Existing rows + spooled rows, last row per key wins, written to the staging dir."""
        assert self._schema is not None
        schema = self._schema
        tables = [conform_table(t, schema) for t in self._read_existing(schema)]
        for path in self._spool:
            with self.fs.open(path, "rb") as f:
                tables.append(conform_table(pq.read_table(f), schema))
        combined = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
        keys = self.stream.primary_key
        missing = [k for k in keys if k not in combined.column_names]
        if missing:
            raise ConfigError(
                f"stream {self.stream.name!r}: primary key columns missing: {', '.join(missing)}"
            )
        merged = combined.take(_last_row_per_key(combined, keys))
        self.fs.rm(f"{self.staging_dir}/_new", recursive=True)
        self._spool.clear()
        self._n = 0
        for batch in merged.to_batches(max_chunksize=1_000_000):
            for directory, group in self._partitions(self.staging_dir, batch):
                part = self._part(directory, group.schema, self.config.format)
                self._append(part, group, self.config.format)
        self._publish()

    def _read_existing(self, schema: pa.Schema) -> list[pa.Table]:
        return read_files(self.fs, self.config, self.table_dir, schema)


# --------------------------------------------------------------------------- helpers


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _last_row_per_key(table: pa.Table, keys: tuple[str, ...]) -> pa.Array:
    """Indices of the last row of each key, in table order (vectorized with a hash group-by)."""
    columns = {}
    for k in keys:
        column = table.column(k).combine_chunks()
        columns[k] = column.storage if isinstance(column.type, pa.ExtensionType) else column
    columns["__row"] = pa.array(range(table.num_rows), pa.int64())
    try:
        grouped = pa.table(columns).group_by(list(keys), use_threads=False)
        winners = grouped.aggregate([("__row", "max")]).column("__row_max").combine_chunks()
        return winners.take(pc.array_sort_indices(winners))
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        key_lists = [table.column(k).to_pylist() for k in keys]  # nested keys: error-rare path
        last: dict[tuple[Any, ...], int] = {}
        for i, key in enumerate(zip(*key_lists, strict=True)):
            last[_hashable(key)] = i
        return pa.array(sorted(last.values()), pa.int64())


def _hashable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(json.dumps(jsonable(v)) if isinstance(v, list | dict) else v for v in key)


def read_table(config: FileDestinationConfig, pipeline: str, stream: str, table: str) -> pa.Table:
    """Read a table written by this destination, with the schema recorded for ``stream``
    (for tools and tests): every committed file, in commit order, conformed to the schema."""
    session = FileSession(config, pipeline)
    doc = session.read_json(session.schema_path(stream))
    if doc is None:
        raise ConnectorError(f"no schema recorded for stream {stream!r}")
    schema = schema_from_json(doc["columns"])
    tables = [
        conform_table(t, schema)
        for t in read_files(session.fs, config, f"{session.root}/{table}", schema)
    ]
    return pa.concat_tables(tables) if tables else schema.empty_table()


__all__ = [
    "FileDestination",
    "FileDestinationConfig",
    "FileSession",
    "FileWriter",
    "json_text",
    "read_csv_exact",
    "read_jsonl_exact",
    "read_table",
]
