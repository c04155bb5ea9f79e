"""PostgreSQL source and destination (psycopg 3 and ADBC)."""

from aggregator.connectors.postgres.destination import (
    PostgresDestination,
    PostgresDestinationConfig,
)
from aggregator.connectors.postgres.source import PostgresSource, PostgresSourceConfig

__all__ = [
    "PostgresDestination",
    "PostgresDestinationConfig",
    "PostgresSource",
    "PostgresSourceConfig",
]
