"""Hooks through which the engine reports progress (the CLI draws bars with them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aggregator.metadata.store import MetadataStore, RunRecord, StreamRunRecord

#: Called once a run's record is stored (``LocalEngine(on_finished=...)``).
RunFinished = Callable[[MetadataStore, RunRecord], None]


class RunObserver:
    """Receives run events; every method is a no-op by default. Called from worker threads."""

    def run_started(self, run_id: str, streams: list[str]) -> None:
        """A run began with these streams."""

    def stream_progress(self, stream: str, rows_read: int, rows_loaded: int) -> None:
        """Rows so far for ``stream``."""

    def checkpoint(self, stream: str, state: dict[str, Any] | None, rows_loaded: int) -> None:
        """Data and state up to here are committed."""

    def stream_finished(self, record: StreamRunRecord) -> None:
        """A stream ended (succeeded or failed)."""

    def log(self, stream: str | None, level: str, message: str) -> None:
        """A line for the run log (a source's ``Log`` message or an engine event)."""


def notify_run_finished(store: MetadataStore, record: RunRecord) -> None:
    """The default :data:`RunFinished` hook: alert rules and outbound webhooks of the run's
    workspace (``aggregator.security.notifications``; never raises)."""
    from aggregator.security.notifications import run_finished

    run_finished(store, record)
