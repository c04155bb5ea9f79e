"""Captures a run's log lines and live per-stream progress into the metadata store.

The engine calls the observer from its stream threads; lines are buffered and written in
one transaction at most every :data:`FLUSH_SECONDS` (and when a stream ends), so a
chatty source does not cost one database round trip per line. A run keeps at most
:data:`MAX_LINES` lines; one final line says how many were dropped.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select

from aggregator.engines.observer import RunObserver
from aggregator.metadata.lineage_models import RunLogLine, RunProgress
from aggregator.metadata.store import MetadataStore, StreamRunRecord

log = structlog.get_logger(__name__)
FLUSH_SECONDS = 1.0
MAX_LINES = 10_000
MAX_MESSAGE = 4_000
LEVELS = ("debug", "info", "warning", "error")


class RunRecorder(RunObserver):
    """A run observer that stores log lines and progress; ``started`` wakes the trigger."""

    def __init__(self, store: MetadataStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one flush at a time, in order
        self._lines: list[tuple[datetime, str, str | None, str]] = []
        self._progress: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._seq = 0
        self._dropped = 0
        self._last_flush = time.monotonic()

    def run_started(self, run_id: str, streams: list[str]) -> None:
        """Note the start and wake the request waiting for it."""
        now = datetime.now(UTC)
        with self._lock:
            for name in streams:
                self._progress[name] = {"read": 0, "loaded": 0, "committed": 0, "started": now}
                self._dirty.add(name)
        self.log(None, "info", f"run started with streams: {', '.join(streams) or '(none)'}")
        self.flush()
        self.started.set()

    def stream_progress(self, stream: str, rows_read: int, rows_loaded: int) -> None:
        """Remember the counters; written at the next flush."""
        with self._lock:
            p = self._progress.setdefault(stream, _fresh())
            p["read"], p["loaded"] = rows_read, rows_loaded
            self._dirty.add(stream)
        self._maybe_flush()

    def checkpoint(self, stream: str, state: dict[str, Any] | None, rows_loaded: int) -> None:
        """A commit: a debug line (written with the next flush, at most once a second)."""
        with self._lock:
            p = self._progress.setdefault(stream, _fresh())
            p["committed"] = rows_loaded
            self._dirty.add(stream)
        self.log(stream, "debug", f"checkpoint committed: {rows_loaded} rows loaded so far")

    def stream_finished(self, record: StreamRunRecord) -> None:
        """Log the stream's outcome with its counts."""
        level = "info" if record.status == "succeeded" else "error"
        text = (
            f"stream {record.status}: {record.rows_read} rows read, {record.rows_loaded} "
            f"loaded, {record.rows_quarantined} quarantined in {record.seconds:.3f} s"
        )
        if record.error:
            text += f"; {record.error}"
        self.log(record.name, level, text)
        self.flush()

    def log(self, stream: str | None, level: str, message: str) -> None:
        """Buffer a line (levels outside debug/info/warning/error are stored as info)."""
        level = level.lower() if level.lower() in LEVELS else "info"
        with self._lock:
            if self._seq + len(self._lines) >= MAX_LINES:
                self._dropped += 1
                return
            self._lines.append((datetime.now(UTC), level, stream, message[:MAX_MESSAGE]))
        self._maybe_flush()

    def close(self) -> None:
        """Write what is buffered (and how many lines were dropped)."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            with self._lock:
                self._lines.append(
                    (datetime.now(UTC), "warning", None, f"{dropped} more log lines dropped")
                )
        self.flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write buffered lines and changed progress in one transaction."""
        with self._write_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            dirty = {name: dict(self._progress[name]) for name in self._dirty}
            self._dirty.clear()
            first = self._seq
            self._seq += len(lines)
            self._last_flush = time.monotonic()
        if not lines and not dirty:
            return
        try:
            self._write(first, lines, dirty)
        except Exception as exc:  # the log must never fail the run
            log.warning("run_log.write_failed", run_id=self.run_id, error=str(exc))

    def _write(
        self,
        first: int,
        lines: list[tuple[datetime, str, str | None, str]],
        dirty: dict[str, dict[str, Any]],
    ) -> None:
        now = datetime.now(UTC)
        with self.store.session() as s, s.begin():
            for i, (at, level, stream, message) in enumerate(lines):
                s.add(
                    RunLogLine(
                        run_id=self.run_id,
                        seq=first + i + 1,
                        at=at,
                        level=level,
                        stream=stream,
                        message=message,
                    )
                )
            if not dirty:
                return
            existing = {
                p.stream: p
                for p in s.scalars(
                    select(RunProgress).where(
                        RunProgress.run_id == self.run_id, RunProgress.stream.in_(list(dirty))
                    )
                )
            }
            for name, p in dirty.items():
                row = existing.get(name)
                if row is None:
                    row = RunProgress(run_id=self.run_id, stream=name, started_at=p["started"])
                    s.add(row)
                row.rows_read, row.rows_loaded = p["read"], p["loaded"]
                row.rows_committed, row.updated_at = p["committed"], now


def _fresh() -> dict[str, Any]:
    return {"read": 0, "loaded": 0, "committed": 0, "started": datetime.now(UTC)}
