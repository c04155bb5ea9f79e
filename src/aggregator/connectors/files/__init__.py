"""The built-in ``files`` source (CSV, TSV, JSON Lines, JSON, Parquet; globs and fsspec URLs)."""

from aggregator.connectors.files.config import FilesConfig, FileStreamConfig
from aggregator.connectors.files.source import FilesSource

__all__ = ["FileStreamConfig", "FilesConfig", "FilesSource"]
