"""DuckDB destination: the embedded default warehouse."""

from aggregator.connectors.duckdb.destination import DuckDBConfig, DuckDBDestination

__all__ = ["DuckDBConfig", "DuckDBDestination"]
