"""Airbyte adapter: Python source connectors from PyPI through the Airbyte protocol."""

from aggregator.connectors.airbyte.source import AirbyteSource

__all__ = ["AirbyteSource"]
