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


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL server (superuser URL)."""
    from tests.services import service_url

    return service_url("pg")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The test MariaDB server."""
    from tests.services import service_url

    return service_url("mysql")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server."""
    from tests.services import service_url

    return service_url("redis")
