"""SQLite source and destination (stdlib ``sqlite3``)."""

from aggregator.connectors.sqlite.destination import SQLiteDestination, SQLiteDestinationConfig
from aggregator.connectors.sqlite.source import SQLiteSource, SQLiteSourceConfig

__all__ = ["SQLiteDestination", "SQLiteDestinationConfig", "SQLiteSource", "SQLiteSourceConfig"]
