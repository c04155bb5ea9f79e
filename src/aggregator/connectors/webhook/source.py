"""The ``webhook`` source: the events ingest streams stored, as typed Arrow batches.

Events are pushed to ``POST /api/v1/ingest/{id}`` (see :mod:`aggregator.api.routes.ingest`)
and committed to the metadata database before the sender is acknowledged. This source reads
them back in order: each stream is one ingest stream; its members become columns (typed
like the ``rest`` source: exact numbers, timestamps with their offsets, nested structs),
plus ``_ingest_seq`` (the event's number in its stream, the primary key and cursor) and
``_ingest_received_at``.

State: ``{"cursor": seq}``, the last event number loaded. A read takes the stream's last
number when it starts and stops there, so events arriving meanwhile wait for the next run.
Events that are not JSON objects, or whose members cannot be typed with the others, are
quarantined at ``stream:event N``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from aggregator.connectors.rest.records import PageTyper, json_types
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.connectors.webhook import store
from aggregator.connectors.webhook.config import WebhookConfig
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Message, Records
from aggregator.metadata.control_models import Workspace
from aggregator.metadata.ingest_models import IngestStream
from aggregator.metadata.store import MetadataStore

SEQ = "_ingest_seq"
RECEIVED = "_ingest_received_at"
SAMPLE_EVENTS = 1000
_RECEIVED_TYPE = pa.timestamp("us", "UTC")


class WebhookSource(Source[WebhookConfig]):
    """Events received by the API's ingest endpoints (push), read incrementally."""

    name: ClassVar[str] = "webhook"
    config_model = WebhookConfig
    description: ClassVar[str] = "Events pushed to signed webhook endpoints (POST /api/v1/ingest)"

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config)
        self._store: MetadataStore | None = None

    @property
    def store(self) -> MetadataStore:
        """The metadata database holding the events (opened at first use)."""
        if self._store is None:
            url = self.config.metadata_url
            if url is None:
                from aggregator.settings import load_settings

                text = load_settings().metadata_database_url()
            else:
                text = url.get_secret_value()
            try:
                self._store = MetadataStore(text)
            except SQLAlchemyError as exc:
                raise ConnectorError(
                    f"webhook source: cannot open the metadata database: {type(exc).__name__}"
                ) from None
            weakref.finalize(self, self._store.engine.dispose)
        return self._store

    def _rows(self) -> list[IngestStream]:
        """The configured ingest streams of the workspace, by name."""
        with self.store.session() as s:
            workspace = s.scalar(
                select(Workspace.id).where(Workspace.name == self.config.workspace)
            )
            if workspace is None:
                raise ConfigError(f"webhook source: no workspace named {self.config.workspace!r}")
            rows = list(
                s.scalars(
                    select(IngestStream)
                    .where(IngestStream.workspace_id == workspace)
                    .order_by(IngestStream.name)
                )
            )
        if self.config.streams is None:
            return rows
        by_name = {r.name: r for r in rows}
        missing = [n for n in self.config.streams if n not in by_name]
        if missing:
            known = ", ".join(by_name) or "none"
            raise ConfigError(
                f"webhook source: no ingest stream {', '.join(map(repr, missing))} in workspace "
                f"{self.config.workspace!r} (existing: {known}); create it with "
                "POST /api/v1/ingest-streams"
            )
        return [by_name[n] for n in self.config.streams]

    def _row(self, name: str) -> IngestStream:
        for row in self._rows():
            if row.name == name:
                return row
        raise ConfigError(f"webhook source: unknown stream {name!r}")

    def check(self) -> CheckResult:
        """The database opens and every configured ingest stream exists."""
        try:
            rows = self._rows()
        except (ConfigError, ConnectorError) as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"{len(rows)} ingest stream(s): {', '.join(r.name for r in rows)}")

    def stream_names(self) -> list[str]:
        """The ingest streams offered (no event is read)."""
        return [r.name for r in self._rows()]

    def discover(self) -> Catalog:
        """Schemas inferred from the first events of each stream, with sizes waiting."""
        return Catalog(tuple(self._discover(row) for row in self._rows()))

    def _discover(self, row: IngestStream) -> Stream:
        with self.store.session() as s:
            page = store.read_events(s, row.id, 0, row.last_seq, SAMPLE_EVENTS)
            waiting = store.pending(s, row.id, 0)
        typer = PageTyper(row.name, {})
        batch, _quarantined, _kept = typer.page_texts(page.payloads, 1)
        fields = [
            f for f in (batch.schema if batch is not None else []) if f.name not in (SEQ, RECEIVED)
        ]
        schema = pa.schema(
            [pa.field(SEQ, pa.int64(), False), *fields, pa.field(RECEIVED, _RECEIVED_TYPE, False)]
        )
        return Stream(
            name=row.name,
            schema=schema,
            primary_key=(SEQ,),
            cursor_candidates=(SEQ,),
            sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
            metadata={
                "ingest_stream_id": row.id,
                "endpoint": f"/api/v1/ingest/{row.id}",
                "estimated_rows": waiting["events"],
                "estimated_bytes": waiting["bytes"],
                "sampled_events": len(page.seqs),
                "declared_types": {
                    SEQ: "integer",
                    **json_types(pa.schema(fields)),
                    RECEIVED: "string (date-time)",
                },
            },
        )

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield the stream's events after the saved ``seq``, one batch per page."""
        row = self._row(stream.name)
        yield self._discover(row).info()
        after = 0
        if stream.sync_mode is SyncMode.INCREMENTAL:
            after = int((state or {}).get("cursor") or 0)
        upto = row.last_seq
        current: list[int] = []
        typer = PageTyper(
            stream.name,
            {k: v for k, v in stream.column_types.items() if k not in (SEQ, RECEIVED)},
            positions=lambda _page, item: f"{stream.name}:event {current[item]}",
        )
        size = min(self.config.batch_size, stream.batch_size)
        number = 0
        while after < upto:
            with self.store.session() as s:
                page = store.read_events(s, row.id, after, upto, size)
            if not page.seqs:
                break
            number += 1
            current[:] = page.seqs
            batch, quarantined, kept = typer.page_texts(page.payloads, number)
            if quarantined is not None:
                yield quarantined
            if batch is not None:
                yield Records(_with_ingest_columns(batch, page, kept))
            after = page.seqs[-1]
            yield Checkpoint({"cursor": after})
        if number == 0:
            yield Checkpoint({"cursor": after})


def _with_ingest_columns(
    batch: pa.RecordBatch, page: store.EventPage, kept: list[int]
) -> pa.RecordBatch:
    """``batch`` with ``_ingest_seq`` first and ``_ingest_received_at`` last."""
    take = pa.array(kept, pa.int64())
    seqs = pa.array(page.seqs, pa.int64()).take(take)
    received = pa.array(page.received, _RECEIVED_TYPE).take(take)
    names = [n for n in batch.schema.names if n not in (SEQ, RECEIVED)]
    columns = [batch.column(n) for n in names]
    return pa.RecordBatch.from_arrays([seqs, *columns, received], names=[SEQ, *names, RECEIVED])


__all__ = ["WebhookSource"]
