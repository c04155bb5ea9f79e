"""What a stream processor measured in one run (stored by ``quality.store``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StreamMetrics:
    """What a processor measured for one stream in one run."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    rows_dropped: int
    seconds: float
    freshness_seconds: float | None
    columns: dict[str, Any] | None
