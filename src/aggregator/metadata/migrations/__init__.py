"""Alembic migrations of the metadata repository (run by :mod:`aggregator.metadata.migrate`)."""
