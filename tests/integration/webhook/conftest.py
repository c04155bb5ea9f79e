"""An API app over a fresh SQLite metadata store, with one ingest stream ``orders``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.metadata.store import MetadataStore
from tests.unit.api.helpers import Api, make_api

SECRET = "whsec-0123456789-SECRET-abcdef"


@dataclass
class Hook:
    """The API, the metadata URL the webhook source reads, and the ``orders`` stream."""

    api: Api
    url: str
    stream_id: str
    endpoint: str


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[Hook]:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    api = make_api(tmp_path / "home", store)
    with api.client:
        created = api.client.post(
            "/api/v1/ingest-streams",
            json={"name": "orders", "secret": SECRET, "max_body_bytes": 2048},
            headers=api.headers("editor"),
        )
        assert created.status_code == 201, created.text
        body = created.json()
        yield Hook(api, url, body["id"], body["endpoint"])
    store.engine.dispose()
