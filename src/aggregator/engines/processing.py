"""The hook where a stream's batches are transformed and checked before they are written.

The engine calls :meth:`StreamProcessor.process` on every batch after the source and before
schema reconciliation; rows a processor rejects are quarantined with its reason. The default
processor passes batches through. Transformations and data-quality checks plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

#: In child-stream rows: the index of the parent row in :attr:`Processed.batch`.
PARENT = "__agg_parent"


@dataclass
class Processed:
    """A processed batch, the rows (by index in the *input* batch) rejected with a reason, and
    child-stream rows by child stream name (their tables hold the parent's key columns, the
    child's columns, and :data:`PARENT`)."""

    batch: pa.RecordBatch
    rejected: dict[int, str] = field(default_factory=dict)
    children: dict[str, pa.Table] = field(default_factory=dict)


class StreamProcessor:
    """Transforms and checks one stream's batches; the base class passes them through."""

    #: Child streams whose rows :meth:`process` emits (written with the parent's commits).
    child_streams: tuple[str, ...] = ()

    def start(self, run_id: str) -> None:
        """Called once before the first batch, with the id of the run."""

    def process(self, batch: pa.RecordBatch) -> Processed:
        """Return the batch to write and the input rows to quarantine."""
        return Processed(batch)

    def finish(self) -> None:
        """Called once after the last batch of the stream (e.g. to store a profile)."""

    def close(self) -> None:
        """Called last, whether the stream succeeded or failed: release resources."""
