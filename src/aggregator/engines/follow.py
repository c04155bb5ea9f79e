"""Continuous runs (``aggregator run --follow``): sources that read changes until stopped.

A source that can follow a stream implements :class:`FollowingSource`: ``read_following``
keeps reading, ends every cycle that found changes with a checkpoint (so the destination
commits at least every ``interval`` seconds while changes arrive), waits at most
``interval`` seconds between cycles, and returns after the checkpoint of the cycle during
which :attr:`Follow.stop` was set. The engine tells it which state the destination has
committed (:meth:`Follow.committed`), so a source only confirms positions that are safe
(a replication slot may drop what it confirmed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from aggregator.core.catalog import ConfiguredStream
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Message
from aggregator.engines.observer import RunObserver
from aggregator.metadata.store import StreamRunRecord


class Follow:
    """What a following source is told: the commit interval, the stop flag, commits."""

    def __init__(self, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ConfigError(f"--commit-interval must be more than 0 seconds (got {interval})")
        self.interval = interval
        self.stop = threading.Event()
        self._committed: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def committed(self, stream: str) -> dict[str, Any] | None:
        """The state the destination last committed for ``stream`` in this run."""
        with self._lock:
            return self._committed.get(stream)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a stop is requested."""
        return self.stop.wait(max(0.0, seconds))

    def observing(self, observer: RunObserver) -> RunObserver:
        """``observer`` that also records committed states for :meth:`committed`."""
        return _CommitTracker(self, observer)

    def _record(self, stream: str, state: dict[str, Any] | None) -> None:
        with self._lock:
            self._committed[stream] = state


@runtime_checkable
class FollowingSource(Protocol):
    """A source that can read some of its streams continuously."""

    def follows(self, stream: ConfiguredStream) -> bool:
        """True when ``stream`` (as configured) can be read continuously."""

    def read_following(
        self, stream: ConfiguredStream, state: dict[str, Any] | None, follow: Follow
    ) -> Iterator[Message]:
        """Messages of ``stream`` until ``follow.stop`` is set (then after a checkpoint)."""


def check_followable(planned: Sequence[Any]) -> None:
    """Refuse a continuous run when a planned stream cannot follow changes."""
    cannot = [
        f"{p.stream.name} ({p.source_name})"
        for p in planned
        if not (isinstance(p.source, FollowingSource) and p.source.follows(p.stream))
    ]
    if cannot:
        raise ConfigError(
            f"--follow: streams {', '.join(cannot)} cannot be read continuously; only change "
            "data capture streams can (e.g. postgres with `cdc: true`, sync_mode incremental, "
            "write_mode merge). Select the CDC streams with --stream, or run the others on a "
            "schedule"
        )


class _CommitTracker(RunObserver):
    """Forwards every event and remembers committed states."""

    def __init__(self, follow: Follow, inner: RunObserver) -> None:
        self.follow = follow
        self.inner = inner

    def run_started(self, run_id: str, streams: list[str]) -> None:
        self.inner.run_started(run_id, streams)

    def stream_progress(self, stream: str, rows_read: int, rows_loaded: int) -> None:
        self.inner.stream_progress(stream, rows_read, rows_loaded)

    def checkpoint(self, stream: str, state: dict[str, Any] | None, rows_loaded: int) -> None:
        self.follow._record(stream, state)
        self.inner.checkpoint(stream, state, rows_loaded)

    def stream_finished(self, record: StreamRunRecord) -> None:
        self.inner.stream_finished(record)

    def log(self, stream: str | None, level: str, message: str) -> None:
        self.inner.log(stream, level, message)
