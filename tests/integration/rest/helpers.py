"""Drive the REST source through the SDK and collect what it yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from aggregator.connectors.rest import RestSource
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.messages import Checkpoint, Log, Quarantined, Records


@dataclass
class Result:
    batches: list[pa.RecordBatch] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches) if self.batches else pa.table({})

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [r for b in self.batches for r in b.to_pylist()]


def source(base_url: str, streams: list[dict[str, Any]], **config: Any) -> RestSource:
    src = RestSource.from_config({"base_url": base_url, "streams": streams, **config})
    assert isinstance(src, RestSource)
    return src


def read(
    src: RestSource,
    stream: str,
    state: dict[str, Any] | None = None,
    incremental: bool = False,
    **kw: Any,
) -> Result:
    mode = SyncMode.INCREMENTAL if incremental else SyncMode.FULL_REFRESH
    result = Result()
    for message in src.read(ConfiguredStream(stream, sync_mode=mode, **kw), state):
        if isinstance(message, Records):
            result.batches.append(message.batch)
        elif isinstance(message, Quarantined):
            result.quarantined.extend(message.rows.to_pylist())
        elif isinstance(message, Checkpoint):
            result.states.append(message.state)
        elif isinstance(message, Log):
            result.logs.append(message.message)
    return result
