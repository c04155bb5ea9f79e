"""Child streams (``unnest`` with ``into``): their rows are written in the parent writer's
transaction, so a child table commits together with its parent's rows and state.

Write modes follow the parent: ``append`` inserts the children of the rows written;
``merge`` first deletes every child of the parent keys written (a parent's children are
replaced as a whole: an updated parent with fewer elements loses the rest) and then inserts
the children of the last row per key; ``replace`` fills ``<child>__staging`` and swaps it
in, before the parent's final commit. A re-run after a failure re-reads what was not
committed and writes it the same way, so no child row is duplicated.

The tables are written through the writer capability
:class:`~aggregator.connectors.sdk.ChildTableWriter` (DuckDB and PostgreSQL implement it);
other destinations fail with a configuration error before data moves.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.connectors.sdk import ChildTable, ChildTableWriter, StreamWriter
from aggregator.core.catalog import ConfiguredStream, SchemaPolicy, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.schema import reconcile
from aggregator.engines.processing import PARENT


def _child_writer(writer: StreamWriter, stream: str) -> ChildTableWriter:
    if isinstance(writer, ChildTableWriter):
        return writer
    raise ConfigError(
        f"stream {stream!r}: unnest into a child stream needs a duckdb or postgres "
        f"destination (this destination's writer is {type(writer).__name__}, which does "
        "not write child tables)"
    )


class ChildTables:
    """Writes the child streams of one stream inside its writer's transactions."""

    def __init__(
        self, writer: StreamWriter, stream: ConfiguredStream, names: tuple[str, ...]
    ) -> None:
        parent = _child_writer(writer, stream.name)
        self.mode = stream.write_mode
        self.keys = list(stream.primary_key)
        self.children: list[ChildTable] = [parent.child_table(name) for name in names]

    def write(
        self, parents: pa.RecordBatch, positions: pa.Array, rows: dict[str, pa.Table]
    ) -> None:
        """Write the children of ``parents`` (the rows written; ``positions``: their rows in
        the processed batch, which child rows name in ``PARENT``)."""
        if parents.num_rows == 0:
            return
        wanted = positions
        keys: pa.Table | None = None
        if self.mode is WriteMode.MERGE:
            table = pa.table({**{k: parents.column(k) for k in self.keys}, PARENT: positions})
            last = table.group_by(self.keys, use_threads=False).aggregate([(PARENT, "max")])
            wanted = last.column(f"{PARENT}_max").combine_chunks()
            keys = last.select(self.keys)
        for child in self.children:
            data = rows.get(child.name)
            if data is not None:
                data = data.filter(pc.is_in(data.column(PARENT), value_set=wanted))
                data = data.drop_columns([PARENT])
            if data is not None and data.num_rows:
                data = self._fit(child, data)
            if keys is not None:
                child.delete_parents(keys)
            if data is not None and data.num_rows:
                child.write(data)

    def _fit(self, child: ChildTable, data: pa.Table) -> pa.Table:
        """``data`` cast to the table's schema, which is created or evolved (columns only
        grow) to fit it first."""
        batch = data.combine_chunks().to_batches()[0]
        fitted = reconcile(child.name, child.current_schema(), batch, SchemaPolicy.EVOLVE)
        if fitted.diff:
            child.apply_schema(fitted.schema)
        return pa.Table.from_batches([fitted.batch])

    def finish(self) -> None:
        """``replace``: swap each staging table in (the parent's finish commits it all)."""
        for child in self.children:
            child.finish()
