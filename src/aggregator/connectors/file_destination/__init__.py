"""File destination: Parquet, CSV or JSON Lines files, committed by deterministic names."""

from aggregator.connectors.file_destination.config import FileDestinationConfig
from aggregator.connectors.file_destination.destination import FileDestination, read_table

__all__ = ["FileDestination", "FileDestinationConfig", "read_table"]
