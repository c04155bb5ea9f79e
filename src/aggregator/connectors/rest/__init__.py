"""The declarative ``rest`` source."""

from aggregator.connectors.rest.source import RestSource

__all__ = ["RestSource"]
