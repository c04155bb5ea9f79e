"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.connectors import registry
from aggregator.metadata.store import MetadataStore
from tests.support import SequenceSource

registry.register(SequenceSource)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    """A fresh SQLite metadata store."""
    s = MetadataStore(f"sqlite:///{tmp_path / 'metadata.db'}")
    yield s
    s.engine.dispose()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's metadata out of the working tree."""
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / ".aggregator"))
