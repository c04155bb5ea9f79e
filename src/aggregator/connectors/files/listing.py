"""Finding the files of a stream (paths, globs, fsspec URLs) and opening them."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.utils import infer_compression

from aggregator.connectors.files.config import Compression, FileFormat, FileStreamConfig
from aggregator.core.errors import ConfigError

_GLOB_CHARS = frozenset("*?[")
_COMPRESSION_EXTS = (".gz", ".gzip", ".zst", ".zstd")
_FORMAT_EXTS = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.TSV,
    ".tab": FileFormat.TSV,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSON,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


@dataclass(frozen=True)
class FileEntry:
    """One matched file: ``key`` names it in state and positions (absolute path or URL)."""

    key: str
    fs: Any
    fs_path: str
    size: int
    mtime: str


def _is_url(path: str) -> bool:
    return "://" in path


def _mtime(fs: Any, path: str, info: dict[str, Any]) -> str:
    """Modification time as an ISO-8601 UTC string (``"unknown"`` if the store has none)."""
    raw = info.get("mtime")
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw, UTC).isoformat()
    try:
        modified = fs.modified(path)
    except (NotImplementedError, OSError, KeyError, AttributeError):
        modified = info.get("LastModified") or info.get("last_modified") or info.get("created")
    if isinstance(modified, datetime):
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return modified.astimezone(UTC).isoformat()
    if isinstance(modified, int | float):
        return datetime.fromtimestamp(modified, UTC).isoformat()
    return str(modified) if modified is not None else "unknown"


def list_files(cfg: FileStreamConfig) -> list[FileEntry]:
    """The files matching ``cfg.path``, sorted by key; an empty list when nothing matches."""
    path = cfg.path if _is_url(cfg.path) else str(Path(cfg.path).expanduser().absolute())
    fs, fs_path = fsspec.core.url_to_fs(path)
    if any(ch in fs_path for ch in _GLOB_CHARS):
        candidates = list(fs.glob(fs_path))
    elif fs.exists(fs_path):
        candidates = list(fs.find(fs_path)) if fs.isdir(fs_path) else [fs_path]
    else:
        candidates = []
    entries = []
    for candidate in candidates:
        info = fs.info(candidate)
        if info.get("type") == "directory":
            continue
        key = candidate if not _is_url(cfg.path) else fs.unstrip_protocol(candidate)
        entries.append(
            FileEntry(key, fs, candidate, int(info.get("size") or 0), _mtime(fs, candidate, info))
        )
    return sorted(entries, key=lambda e: e.key)


def require_files(stream: str, cfg: FileStreamConfig) -> list[FileEntry]:
    """Like :func:`list_files`, but a clear :class:`ConfigError` when nothing matches."""
    try:
        entries = list_files(cfg)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"stream {stream!r}: cannot list {cfg.path!r}: {exc}") from exc
    if not entries:
        raise ConfigError(f"stream {stream!r}: no file matches {cfg.path!r}")
    return entries


def _strip_compression(name: str) -> str:
    lower = name.lower()
    for ext in _COMPRESSION_EXTS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def file_format(stream: str, cfg: FileStreamConfig, entry: FileEntry) -> FileFormat:
    """The configured format, or the one the extension names (also through .gz/.zst)."""
    if cfg.format is not None:
        return cfg.format
    base = _strip_compression(entry.fs_path).lower()
    for ext, fmt in _FORMAT_EXTS.items():
        if base.endswith(ext):
            return fmt
    raise ConfigError(
        f"stream {stream!r}: cannot infer the format of {entry.key!r}; set 'format' "
        f"(one of {', '.join(f.value for f in FileFormat)})"
    )


def compression_of(cfg: FileStreamConfig, entry: FileEntry) -> str | None:
    """The fsspec compression name for ``entry`` (``None`` for uncompressed)."""
    if cfg.compression is None or cfg.compression is Compression.INFER:
        name = entry.fs_path.lower()
        if name.endswith(".zstd"):
            return "zstd"
        result: str | None = infer_compression(name)
        return result
    if cfg.compression is Compression.NONE:
        return None
    return cfg.compression.value


def open_binary(cfg: FileStreamConfig, entry: FileEntry) -> IO[bytes]:
    """Open ``entry`` for reading decompressed bytes."""
    handle: IO[bytes] = entry.fs.open(entry.fs_path, "rb", compression=compression_of(cfg, entry))
    return handle


def is_utf8(encoding: str) -> bool:
    """True when ``encoding`` names UTF-8 (with or without signature)."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def utf8_chunks(handle: IO[bytes], encoding: str, size: int) -> Iterator[bytes]:
    """Read ``handle`` in chunks of about ``size`` bytes, transcoded to UTF-8, BOM removed."""
    if is_utf8(encoding):
        first = True
        while chunk := handle.read(size):
            if first:
                first = False
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")
            yield chunk
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    first = True
    while True:
        raw = handle.read(size)
        text = decoder.decode(raw, final=not raw)
        if first and text:
            first = False
            text = text.removeprefix("\ufeff")
        if text:
            yield text.encode("utf-8")
        if not raw:
            return
