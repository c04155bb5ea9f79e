"""Test helpers: a deterministic source that implements the SDK contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa

from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.messages import Checkpoint, Message, Quarantined, Records


class SequenceConfig(ConnectorConfig):
    """Rows 1..rows with id, a decimal amount, a version column and a timestamp."""

    rows: int = 1000
    batch: int = 100
    version: int = 1
    bad_every: int = 0
    extra_column_from: int = 0
    delay: float = 0.0


class SequenceSource(Source[SequenceConfig]):
    """Yields ``rows`` rows in batches, checkpointing ``{"after": id}`` after each batch."""

    name: ClassVar[str] = "test_sequence"
    config_model = SequenceConfig

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def discover(self) -> Catalog:
        schema = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2))])
        return Catalog(
            (
                Stream(
                    "numbers",
                    schema,
                    ("id",),
                    ("id",),
                    (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
                ),
            )
        )

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        c = self.config
        start = (state or {}).get("after", 0) + 1
        for first in range(start, c.rows + 1, c.batch):
            ids = list(range(first, min(first + c.batch, c.rows + 1)))
            if c.bad_every:
                bad = [i for i in ids if i % c.bad_every == 0]
                ids = [i for i in ids if i % c.bad_every != 0]
                if bad:
                    yield Quarantined.of(
                        ["unparseable"] * len(bad), [f"row {i}" for i in bad], [str(i) for i in bad]
                    )
            columns: dict[str, Any] = {
                "id": pa.array(ids, pa.int64()),
                "amount": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(12, 2)),
                "version": pa.array([c.version] * len(ids), pa.int64()),
            }
            if c.extra_column_from and first >= c.extra_column_from:
                columns["note"] = pa.array([f"n{i}" for i in ids])
            if c.delay:
                time.sleep(c.delay)
            yield Records(pa.RecordBatch.from_pydict(columns))
            yield Checkpoint({"after": ids[-1] if ids else first + c.batch - 1})


def pipeline_dict(tmp: str, write_mode: str = "append", **config: Any) -> dict[str, Any]:
    """A pipeline spec over SequenceSource into DuckDB at ``tmp``."""
    return {
        "name": "seq",
        "sources": [
            {
                "name": "gen",
                "type": "test_sequence",
                "config": config,
                "streams": [
                    {
                        "name": "numbers",
                        "sync_mode": "incremental",
                        "cursor_field": "id",
                        "primary_key": ["id"],
                        "write_mode": write_mode,
                    }
                ],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": f"{tmp}/wh.duckdb"}},
    }
