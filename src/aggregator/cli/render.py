"""Rendering of runs, tables and progress for the terminal."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from aggregator.engines.observer import RunObserver
from aggregator.metadata.store import RunRecord, StreamRunRecord

if TYPE_CHECKING:
    import pyarrow as pa


def run_table(record: RunRecord) -> Table:
    """Per-stream summary of a run."""
    table = Table(title=f"run {record.id[:8]} · {record.pipeline} · {record.status}")
    for column in ("stream", "status", "read", "loaded", "quarantined", "seconds", "rows/s"):
        table.add_column(column, justify="left" if column in ("stream", "status") else "right")
    for s in record.streams:
        style = "green" if s.status == "succeeded" else "red"
        table.add_row(
            s.name,
            f"[{style}]{s.status}[/{style}]",
            f"{s.rows_read:,}",
            f"{s.rows_loaded:,}",
            f"{s.rows_quarantined:,}",
            f"{s.seconds:.2f}",
            f"{s.rows_per_second:,.0f}",
        )
    return table


def runs_table(records: list[RunRecord]) -> Table:
    """A list of runs."""
    table = Table(title="runs")
    for column in ("run", "pipeline", "status", "started", "seconds", "read", "loaded", "quar."):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.id[:8],
            r.pipeline,
            r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.seconds:.1f}",
            f"{sum(s.rows_read for s in r.streams):,}",
            f"{sum(s.rows_loaded for s in r.streams):,}",
            f"{sum(s.rows_quarantined for s in r.streams):,}",
        )
    return table


def arrow_table(data: pa.Table, title: str | None = None) -> Table:
    """An Arrow table as a rich table (values rendered with ``str``)."""
    table = Table(title=title)
    for f in data.schema:
        table.add_column(f"{f.name}\n[dim]{f.type}[/dim]")
    for row in data.to_pylist():
        table.add_row(*("∅" if v is None else str(v) for v in row.values()))
    return table


class ProgressObserver(RunObserver):
    """Draws one progress line per stream while a run goes on."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.lock = threading.Lock()

    def run_started(self, run_id: str, streams: list[str]) -> None:
        """Add a line per stream."""
        self.progress.start()
        for name in streams:
            self.tasks[name] = self.progress.add_task(name, total=None, rows=0, status="")

    def stream_progress(self, stream: str, rows_read: int, rows_loaded: int) -> None:
        """Update the row count."""
        with self.lock:
            self.progress.update(self.tasks[stream], rows=rows_read)

    def stream_finished(self, record: StreamRunRecord) -> None:
        """Mark the line done."""
        with self.lock:
            task = self.tasks.get(record.name)
            if task is not None:
                self.progress.update(
                    task, rows=record.rows_read, status=record.status, total=1, completed=1
                )

    def stop(self) -> None:
        """Stop drawing."""
        self.progress.stop()
