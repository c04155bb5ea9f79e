"""Metadata repository: runs, per-stream metrics and schema versions (SQLAlchemy)."""

from aggregator.metadata.store import MetadataStore, RunRecord, StreamRunRecord

__all__ = ["MetadataStore", "RunRecord", "StreamRunRecord"]
