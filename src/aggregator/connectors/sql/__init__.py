"""Generic source for any SQLAlchemy-supported database (the slower, portable path)."""

from aggregator.connectors.sql.source import SQLSource, SQLSourceConfig

__all__ = ["SQLSource", "SQLSourceConfig"]
