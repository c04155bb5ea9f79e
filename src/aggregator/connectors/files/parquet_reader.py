"""Parquet reader: native Arrow types, ``iter_batches`` (never the whole file at once)."""

from __future__ import annotations

from collections.abc import Generator

import pyarrow.parquet as pq

from aggregator.connectors.files.common import Piece
from aggregator.connectors.files.config import FileStreamConfig
from aggregator.connectors.files.listing import FileEntry, open_binary


def parquet_pieces(
    cfg: FileStreamConfig, entry: FileEntry, batch_size: int, skip: int = 0
) -> Generator[Piece, None, None]:
    """Batches of ``batch_size`` rows; the first ``skip`` rows are skipped (mid-file resume)."""
    with open_binary(cfg, entry) as handle:
        parquet = pq.ParquetFile(handle)
        yield Piece(columns=list(parquet.schema_arrow.names))
        seen = 0
        for batch in parquet.iter_batches(batch_size=batch_size, use_threads=False):
            start = max(0, min(skip - seen, batch.num_rows))
            seen += batch.num_rows
            if start == batch.num_rows:
                continue
            rows = batch.slice(start)
            yield Piece(batch=rows, records=rows.num_rows)
