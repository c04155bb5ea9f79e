"""Messages a source yields to the engine.

A source's ``read`` yields, for one stream, any sequence of:

- :class:`Records`: an Arrow record batch of typed rows;
- :class:`Quarantined`: rows that could not be parsed or typed, with reasons and positions;
- :class:`Checkpoint`: the state to resume from once everything yielded before is committed;
- :class:`SchemaChange`: the source's own view of the stream schema changed (informational);
- :class:`StreamInfo`: what the source knows of the stream (keys, cursor candidates, size
  estimates, source-native types), stored with the destination schema's versions;
- :class:`Log`: a message for the run log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("reason", pa.string(), nullable=False),
        pa.field("position", pa.string()),
        pa.field("raw", pa.string()),
    ]
)


@dataclass(frozen=True)
class Records:
    """Typed rows for the stream."""

    batch: pa.RecordBatch


@dataclass(frozen=True)
class Quarantined:
    """Rows that cannot be loaded: a table with :data:`QUARANTINE_SCHEMA`."""

    rows: pa.Table

    @classmethod
    def of(
        cls, reasons: list[str], positions: list[str | None], raws: list[str | None]
    ) -> Quarantined:
        """Build from parallel lists (used on error paths only)."""
        return cls(
            pa.table(
                {"reason": reasons, "position": positions, "raw": raws}, schema=QUARANTINE_SCHEMA
            )
        )


@dataclass(frozen=True)
class Checkpoint:
    """State to persist together with everything yielded before it."""

    state: dict[str, Any]


@dataclass(frozen=True)
class SchemaChange:
    """The source's schema for the stream is now ``schema``."""

    schema: pa.Schema


@dataclass(frozen=True)
class StreamInfo:
    """What the source knows of the stream, usually yielded first.

    ``metadata`` holds at least ``declared_types`` (column -> source-native type),
    ``estimated_rows`` and ``estimated_bytes`` (``None`` when unknown).
    """

    primary_key: tuple[str, ...]
    cursor_candidates: tuple[str, ...]
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (stored with schema versions)."""
        return {
            "primary_key": list(self.primary_key),
            "cursor_candidates": list(self.cursor_candidates),
            **self.metadata,
        }


@dataclass(frozen=True)
class Log:
    """A message for the run log."""

    level: str
    message: str


Message = Records | Quarantined | Checkpoint | SchemaChange | StreamInfo | Log


def raw_text(value: bytes | str | None, limit: int = 10_000) -> str | None:
    """Render a raw value for quarantine: UTF-8 where valid, else escaped bytes."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    return value if len(value) <= limit else value[:limit] + "…"
