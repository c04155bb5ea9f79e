"""Configuration of the ``files`` destination."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aggregator.connectors.sdk import ConnectorConfig


class FileDestinationConfig(ConnectorConfig):
    """Where and how files are written."""

    path: str = Field(description="Base directory: a local path or an fsspec URL.")
    format: Literal["parquet", "csv", "jsonl"] = Field("parquet", description="File format.")
    partition_by: str | None = Field(
        None, description="Column for Hive-style partition directories (<col>=<value>/)."
    )
    compression: str | None = Field(
        None,
        description="Parquet codec (default zstd); for csv/jsonl: gzip, zstd, bz2 or xz.",
    )
