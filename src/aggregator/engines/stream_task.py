"""Moves one stream from a source to a destination writer, applying schema policy.

A producer thread iterates the source and puts messages into a bounded queue, so memory is
bounded by ``queue_size`` batches; this thread reconciles schemas, writes batches, stages
quarantined rows and commits at every checkpoint. When the stream has transforms or checks,
a processing thread between the two applies them, so that a batch is transformed while the
one before it is written (order is kept: one thread processes every batch in turn).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from aggregator.connectors.sdk import StreamWriter
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import (
    QUARANTINE_SCHEMA,
    Checkpoint,
    Log,
    Message,
    Quarantined,
    Records,
    SchemaChange,
    StreamInfo,
)
from aggregator.core.queues import put_unless_stopped
from aggregator.core.schema import reconcile, row_json
from aggregator.core.types import schema_to_json
from aggregator.engines.observer import RunObserver
from aggregator.engines.processing import Processed, StreamProcessor
from aggregator.metadata.store import MetadataStore, StreamRunRecord

log = structlog.get_logger(__name__)
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class StreamCancelled(Exception):
    """The run was cancelled while this stream was running."""


def _produce(messages: Iterator[Message], out: queue.Queue[object], stop: threading.Event) -> None:
    def put(item: object) -> bool:
        return put_unless_stopped(out, item, stop)

    try:
        for message in messages:
            if not put(message):
                return
        put(_DONE)
    except BaseException as exc:
        put(_Failure(exc))
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()


def _process(
    processor: StreamProcessor,
    source: queue.Queue[object],
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Apply ``processor`` to each batch from ``source`` in order: a record batch goes on as
    ``(message, processed)``, anything else as it came."""
    while not stop.is_set():
        try:
            item = source.get(timeout=0.2)
        except queue.Empty:
            continue
        if isinstance(item, Records):
            try:
                item = (item, processor.process(item.batch))
            except BaseException as exc:
                put_unless_stopped(out, _Failure(exc), stop)
                return
        if not put_unless_stopped(out, item, stop) or item is _DONE or isinstance(item, _Failure):
            return


class StreamTask:
    """Runs one configured stream to completion and returns its record."""

    def __init__(
        self,
        *,
        pipeline: str,
        run_id: str,
        stream: ConfiguredStream,
        messages: Iterator[Message],
        writer: StreamWriter,
        store: MetadataStore,
        observer: RunObserver,
        queue_size: int,
        stop: threading.Event,
        make_processor: Callable[[], StreamProcessor] | None = None,
    ) -> None:
        """``make_processor`` builds the stream's processor (default: pass batches through)
        once the source has started, so that compiling steps and loading their references
        overlaps with the source's connection and first read; an error building it fails the
        stream."""
        self.pipeline = pipeline
        self.run_id = run_id
        self.stream = stream
        self.messages = messages
        self.writer = writer
        self.store = store
        self.observer = observer
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.processed: queue.Queue[object] | None = None  # after the processing thread
        self.stop = stop
        self.processor = StreamProcessor()
        self._make_processor = make_processor
        self.record = StreamRunRecord(name=stream.name, status="running")
        self._pending_versions: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self._state: dict[str, Any] | None = None
        self._info: dict[str, Any] | None = None
        self._info_stored = False
        self._offset = 0
        self._children: Any = None  # transform.children.ChildTables when there are any

    def run(self) -> StreamRunRecord:
        """Move the stream; failures are recorded, never raised."""
        started = time.perf_counter()
        local_stop = threading.Event()
        producer = threading.Thread(
            target=_produce,
            args=(self.messages, self.queue, local_stop),
            name=f"source-{self.stream.name}",
            daemon=True,
        )
        producer.start()
        worker: threading.Thread | None = None
        try:
            if self._make_processor is not None:  # built while the source connects and reads
                self.processor = self._make_processor()
            self.processor.start(self.run_id)
            worker = self._start_processing(local_stop)
            if self.processor.child_streams:
                from aggregator.transform.children import ChildTables

                self._children = ChildTables(self.writer, self.stream, self.processor.child_streams)
            self._consume()
            self.processor.finish()
            if self._children is not None:
                self._children.finish()
            self.writer.finish(self._state)
            self._flush_versions()
            self.record.status = "succeeded"
        except BaseException as exc:
            self.record.status = "cancelled" if isinstance(exc, StreamCancelled) else "failed"
            self.record.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.error("stream.failed", stream=self.stream.name, error=self.record.error)
            try:
                self.writer.abort()
            except Exception as abort_exc:
                log.error("stream.abort_failed", stream=self.stream.name, error=str(abort_exc))
        finally:
            local_stop.set()
            producer.join(timeout=5)
            if worker is not None:
                worker.join(timeout=5)
            self._close_processor()
            self.record.seconds = time.perf_counter() - started
            self.record.state = self._state
        self.observer.stream_finished(self.record)
        return self.record

    def _start_processing(self, stop: threading.Event) -> threading.Thread | None:
        """The processing thread, when the processor does more than pass batches through."""
        if type(self.processor).process is StreamProcessor.process:
            return None
        self.processed = queue.Queue(maxsize=2)
        worker = threading.Thread(
            target=_process,
            args=(self.processor, self.queue, self.processed, stop),
            name=f"process-{self.stream.name}",
            daemon=True,
        )
        worker.start()
        return worker

    def _close_processor(self) -> None:
        try:
            self.processor.close()
        except Exception as exc:
            log.error("processor.close_failed", stream=self.stream.name, error=str(exc))

    def _consume(self) -> None:
        if self.stream.write_mode is WriteMode.REPLACE:
            current = self.writer.current_schema()
            if current is not None:
                self.writer.apply_schema(current)
        source = self.queue if self.processed is None else self.processed
        while True:
            if self.stop.is_set():
                raise StreamCancelled("run cancelled")
            try:
                item = source.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            if isinstance(item, tuple):
                self._write(item[0].batch, item[1])
            else:
                self._handle(item)  # type: ignore[arg-type]

    def _handle(self, message: Message) -> None:
        if isinstance(message, Records):
            self._write(message.batch, self.processor.process(message.batch))
        elif isinstance(message, Quarantined):
            self.record.rows_read += message.rows.num_rows
            self._quarantine(message.rows)
        elif isinstance(message, Checkpoint):
            self._commit(message.state)
        elif isinstance(message, StreamInfo):
            self._info = {
                **message.to_json(),
                "cursor_field": self.stream.cursor_field,
                "sync_mode": self.stream.sync_mode.value,
            }
            self._info_stored = False
        elif isinstance(message, SchemaChange):
            log.info("source.schema_change", stream=self.stream.name)
        elif isinstance(message, Log):
            log.log(_LEVELS.get(message.level, 20), message.message, stream=self.stream.name)
            self.observer.log(self.stream.name, message.level, message.message)

    def _write(self, batch: pa.RecordBatch, processed: Processed) -> None:
        self._offset = self.record.rows_read
        self.record.rows_read += batch.num_rows
        if processed.rejected:
            self._quarantine_rows(batch, processed.rejected)
        batch = processed.batch
        null_keys = self._null_keys(batch)
        if null_keys:
            self._quarantine_rows(batch, null_keys)
            batch = batch.filter(pa.array([i not in null_keys for i in range(batch.num_rows)]))
        result = reconcile(
            self.stream.name, self.writer.current_schema(), batch, self.stream.schema_policy
        )
        if result.rejected:
            self._quarantine_rows(batch, result.rejected)
        if result.diff:
            self.writer.apply_schema(result.schema)
            self._pending_versions.append((schema_to_json(result.schema), result.diff.to_json()))
        self.writer.write(result.batch)
        if self._children is not None:
            parents = np.delete(np.arange(processed.batch.num_rows), sorted(null_keys))
            parents = np.delete(parents, sorted(result.rejected))
            self._children.write(result.batch, pa.array(parents), processed.children)
        self.record.rows_loaded += result.batch.num_rows
        self.record.bytes += result.batch.nbytes
        self.observer.stream_progress(
            self.stream.name, self.record.rows_read, self.record.rows_loaded
        )

    def _null_keys(self, batch: pa.RecordBatch) -> dict[int, str]:
        if self.stream.write_mode is not WriteMode.MERGE:
            return {}
        rejected: dict[int, str] = {}
        for key in self.stream.primary_key:
            if key not in batch.schema.names:
                raise ConfigError(
                    f"stream {self.stream.name!r}: primary key column {key!r} is not in the data "
                    f"(columns: {', '.join(batch.schema.names)})"
                )
            nulls = pc.is_null(batch.column(key))
            if pc.any(nulls).as_py():
                for row in pc.indices_nonzero(nulls).to_pylist():
                    rejected.setdefault(row, f"primary key column {key!r} is null")
        return rejected

    def _quarantine_rows(self, batch: pa.RecordBatch, rejected: dict[int, str]) -> None:
        rows = sorted(rejected)
        table = pa.table(
            {
                "reason": [rejected[r] for r in rows],
                "position": [self._position(batch, r) for r in rows],
                "raw": [row_json(batch, r) for r in rows],
            },
            schema=QUARANTINE_SCHEMA,
        )
        self._quarantine(table)

    def _position(self, batch: pa.RecordBatch, row: int) -> str:
        """Where a row came from: its key if the stream has one, else its ordinal in the run."""
        keys = [k for k in self.stream.primary_key if k in batch.schema.names]
        if keys:
            values = ", ".join(f"{k}={batch.column(k)[row].as_py()!r}" for k in keys)
            return f"{self.stream.name}:{values}"
        return f"{self.stream.name}:row {self._offset + row + 1} of run {self.run_id[:8]}"

    def _quarantine(self, rows: pa.Table) -> None:
        self.writer.quarantine(rows)
        self.record.rows_quarantined += rows.num_rows

    def _commit(self, state: dict[str, Any]) -> None:
        self.writer.commit(state)
        self._state = state
        if self.stream.write_mode is not WriteMode.REPLACE:
            self._flush_versions()
        log.info(
            "checkpoint.committed",
            stream=self.stream.name,
            rows_loaded=self.record.rows_loaded,
            run_id=self.run_id,
        )
        self.observer.checkpoint(self.stream.name, state, self.record.rows_loaded)

    def _flush_versions(self) -> None:
        """Record schema versions once the destination has committed them, with the source's
        stream metadata; without a new version, the newest one gets this run's metadata."""
        for columns, diff in self._pending_versions:
            self.store.add_schema_version(
                self.pipeline, self.stream.table, columns, diff, self.run_id, self._info
            )
            self._info_stored = True
        self._pending_versions.clear()
        if self._info is not None and not self._info_stored:
            self.store.set_stream_metadata(self.pipeline, self.stream.table, self._info)
            self._info_stored = True


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
