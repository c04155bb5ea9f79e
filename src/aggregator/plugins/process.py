"""Running connector processes: private config files, chunked pipe reads, stderr tails."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20
FLUSH_SECONDS = 0.2
SMALL_READ = 1 << 16
NAP_SECONDS = 0.005
F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe lets a fast tap run ahead while we parse


def write_private(directory: Path, name: str, data: Any) -> str:
    """Write ``data`` as JSON to a file only we can read (configs hold secrets)."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return str(path)


def enlarge_pipe(pipe: IO[bytes] | None) -> None:
    """Give a child's stdout pipe ``CHUNK`` bytes of buffer (Linux; ignored elsewhere)."""
    if pipe is not None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, CHUNK)


def chunks(fd: int) -> Iterator[bytes]:
    """The tap's output in chunks of about ``CHUNK`` bytes, or less after a quiet
    ``FLUSH_SECONDS`` (so STATE messages of a slow tap are not held back)."""
    pending: list[bytes] = []
    size = 0
    while True:
        ready, _, _ = select.select([fd], [], [], FLUSH_SECONDS)
        if ready:
            data = os.read(fd, CHUNK)
            if not data:
                break
            pending.append(data)
            size += len(data)
            if size < CHUNK:
                if len(data) < SMALL_READ:
                    # taps flush every line: let the pipe fill instead of a syscall per row
                    time.sleep(NAP_SECONDS)
                continue
        if pending:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def tail(data: bytes, lines: int = 15) -> str:
    text = data.decode("utf-8", "backslashreplace").strip().splitlines()
    return "\n".join(text[-lines:])
