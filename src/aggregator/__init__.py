"""Aggregator: a self-hosted data integration platform.

Sources yield Arrow record batches, the engine applies schema policy and
quarantine, and destinations commit data and state together.
"""

__version__ = "0.1.0"
