"""What the per-format readers hand to the source: typed batches, quarantine and row counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from aggregator.core.messages import Quarantined, raw_text


@dataclass
class Piece:
    """A step of reading one file.

    ``records`` counts the data rows of the file consumed by this piece (loaded or
    quarantined); the source adds them up into the resumable ``current.rows`` position.
    ``columns`` announces the header of a file (before its first rows).
    """

    batch: pa.RecordBatch | None = None
    quarantined: Quarantined | None = None
    records: int = 0
    logs: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] | None = None


class QuarantineBuilder:
    """Collects quarantined rows (error path only)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.positions: list[str | None] = []
        self.raws: list[str | None] = []

    def add(self, reason: str, position: str | None, raw: bytes | str | None) -> None:
        """Add one rejected row."""
        self.reasons.append(reason)
        self.positions.append(position)
        self.raws.append(raw_text(raw))

    def __len__(self) -> int:
        return len(self.reasons)

    def build(self) -> Quarantined | None:
        """The collected rows, or ``None`` when there are none."""
        if not self.reasons:
            return None
        return Quarantined.of(self.reasons, self.positions, self.raws)


def drop_rows(batch: pa.RecordBatch, rows: set[int] | dict[int, str]) -> pa.RecordBatch:
    """``batch`` without the given row indices (error path: builds a Python mask)."""
    if not rows:
        return batch
    mask = pa.array([i not in rows for i in range(batch.num_rows)], pa.bool_())
    return batch.filter(mask)
