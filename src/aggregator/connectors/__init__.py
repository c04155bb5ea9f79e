"""Connectors: the SDK, the registry, and the built-in sources and destinations."""
