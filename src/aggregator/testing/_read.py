"""Run a source's ``read`` and collect what it yields (for tests and tutorials)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from aggregator.connectors.sdk import Source
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.messages import (
    Checkpoint,
    Log,
    Quarantined,
    Records,
    SchemaChange,
    StreamInfo,
)


@dataclass
class ReadResult:
    """Everything one ``read`` yielded, checked against the message contract."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    infos: list[StreamInfo] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows loaded (in ``Records``)."""
        return sum(b.num_rows for b in self.batches)

    @property
    def table(self) -> pa.Table:
        """The loaded rows as one table (schemas unified permissively)."""
        if not self.batches:
            return pa.table({})
        tables = [pa.Table.from_batches([b]) for b in self.batches]
        return pa.concat_tables(tables, promote_options="permissive")

    @property
    def final_state(self) -> dict[str, Any] | None:
        """The last checkpointed state."""
        return self.states[-1] if self.states else None


def read_stream(
    source: Source[Any],
    stream: str,
    state: dict[str, Any] | None = None,
    *,
    cursor_field: str | None = None,
    incremental: bool | None = None,
    **options: Any,
) -> ReadResult:
    """Read ``stream`` and check each message: batches, quarantine rows, JSON states."""
    mode = SyncMode.INCREMENTAL if (incremental or cursor_field) else SyncMode.FULL_REFRESH
    if incremental is False:
        mode = SyncMode.FULL_REFRESH
    configured = ConfiguredStream(stream, sync_mode=mode, cursor_field=cursor_field, **options)
    result = ReadResult()
    for message in source.read(configured, state):
        if isinstance(message, Records):
            assert isinstance(message.batch, pa.RecordBatch), "Records must carry a RecordBatch"
            result.batches.append(message.batch)
        elif isinstance(message, Quarantined):
            rows = message.rows.to_pylist()
            for row in rows:
                assert row["reason"], "a quarantined row needs a reason"
                assert row["position"], "a quarantined row needs a position"
            result.quarantined.extend(rows)
        elif isinstance(message, Checkpoint):
            json.dumps(message.state)  # states must be JSON
            result.states.append(message.state)
        elif isinstance(message, Log):
            result.logs.append((message.level, message.message))
        elif isinstance(message, StreamInfo):
            json.dumps(message.to_json())  # stored in the metadata repository as JSON
            for key in ("declared_types", "estimated_rows", "estimated_bytes"):
                assert key in message.metadata, f"StreamInfo.metadata lacks {key!r}"
            result.infos.append(message)
        else:
            assert isinstance(message, SchemaChange), f"unexpected message {message!r}"
    return result
