"""Streams and catalogs: what a source offers and what a pipeline asks of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from aggregator.core.messages import StreamInfo
from aggregator.core.types import schema_from_json, schema_to_json


class SyncMode(StrEnum):
    """How a stream is read."""

    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"


class WriteMode(StrEnum):
    """How a stream is written to the destination."""

    APPEND = "append"
    REPLACE = "replace"
    MERGE = "merge"


class SchemaPolicy(StrEnum):
    """What happens when incoming data does not match the destination schema.

    ``evolve`` adds columns and widens types along the safe lattice; ``freeze`` fails the run;
    ``discard_columns`` drops new columns (and quarantines rows whose types no longer fit);
    ``quarantine_rows`` sends rows carrying new columns or non-fitting types to quarantine.
    """

    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_COLUMNS = "discard_columns"
    QUARANTINE_ROWS = "quarantine_rows"


@dataclass(frozen=True)
class Stream:
    """A stream as discovered: its schema, keys and what it supports."""

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    cursor_candidates: tuple[str, ...] = ()
    sync_modes: tuple[SyncMode, ...] = (SyncMode.FULL_REFRESH,)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly description (used by ``discover`` and the metadata store)."""
        return {
            "name": self.name,
            "columns": schema_to_json(self.schema),
            "primary_key": list(self.primary_key),
            "cursor_candidates": list(self.cursor_candidates),
            "sync_modes": [m.value for m in self.sync_modes],
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stream:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=data["name"],
            schema=schema_from_json(data["columns"]),
            primary_key=tuple(data.get("primary_key", ())),
            cursor_candidates=tuple(data.get("cursor_candidates", ())),
            sync_modes=tuple(SyncMode(m) for m in data.get("sync_modes", ["full_refresh"])),
            metadata=dict(data.get("metadata", {})),
        )

    def info(self) -> StreamInfo:
        """The stream as a :class:`StreamInfo` message (sources yield it from ``read``)."""
        metadata: dict[str, Any] = {
            "declared_types": {},
            "estimated_rows": None,
            "estimated_bytes": None,
        }
        return StreamInfo(self.primary_key, self.cursor_candidates, {**metadata, **self.metadata})


@dataclass(frozen=True)
class Catalog:
    """The streams a source offers."""

    streams: tuple[Stream, ...]

    def get(self, name: str) -> Stream | None:
        """The stream called ``name``, if any."""
        return next((s for s in self.streams if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"streams": [s.to_json() for s in self.streams]}


@dataclass(frozen=True)
class ConfiguredStream:
    """A stream as a pipeline wants it read and written."""

    name: str
    sync_mode: SyncMode = SyncMode.FULL_REFRESH
    write_mode: WriteMode = WriteMode.REPLACE
    cursor_field: str | None = None
    primary_key: tuple[str, ...] = ()
    schema_policy: SchemaPolicy = SchemaPolicy.EVOLVE
    destination_table: str | None = None
    column_types: dict[str, pa.DataType] = field(default_factory=dict)
    batch_size: int = 65_536

    @property
    def table(self) -> str:
        """The destination table name."""
        return self.destination_table or self.name
