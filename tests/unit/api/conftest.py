"""An API over a fresh SQLite metadata store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.metadata.store import MetadataStore
from tests.unit.api.helpers import Api, make_api


@pytest.fixture
def api(tmp_path: Path, store: MetadataStore) -> Iterator[Api]:
    """Users admin/editor/operator/viewer@example.com with the test password."""
    built = make_api(tmp_path / "home", store)
    with built.client:
        yield built
