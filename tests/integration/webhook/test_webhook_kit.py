"""The webhook source passes the standard connector suite of ``aggregator.testing``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.connectors.webhook import WebhookSource
from aggregator.connectors.webhook import store as ingest_store
from aggregator.metadata.store import MetadataStore
from aggregator.security.crypto import SecretBox, generate_key
from aggregator.security.identity import DEFAULT_WORKSPACE
from aggregator.testing import SourceTestSuite

pytestmark = pytest.mark.integration


@pytest.fixture
def events_db(tmp_path: Path) -> Iterator[str]:
    """A metadata database with ingest streams ``orders`` (3 events) and ``empty`` (none)."""
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    store = MetadataStore(url)
    box = SecretBox(generate_key())
    with store.session() as s:
        orders = ingest_store.create_stream(s, box, DEFAULT_WORKSPACE, "orders", "x" * 20)
        ingest_store.create_stream(s, box, DEFAULT_WORKSPACE, "empty", "y" * 20)
        s.commit()
        orders_id = orders.id
    for i in (1, 2, 3):
        with store.session() as s:
            body = json.dumps({"id": i, "total": f"{i}.50"})
            ingest_store.receive(s, orders_id, [body], f"key:{i}")
    store.engine.dispose()
    yield url


class TestWebhookSource(SourceTestSuite):
    source_class = WebhookSource
    incremental_streams = {"orders": "_ingest_seq"}
    bad_field = "batch_size"

    @pytest.fixture
    def config(self, events_db: str) -> dict[str, Any]:
        return {"metadata_url": events_db, "streams": ["orders"]}

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "batch_size": 0}

    @pytest.fixture
    def failing_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "workspace": "no-such-workspace"}


def test_a_stream_without_events_reads_nothing_and_keeps_its_cursor(events_db: str) -> None:
    from aggregator.testing import read_stream

    src = WebhookSource.from_config({"metadata_url": events_db})
    assert isinstance(src, WebhookSource)
    assert src.stream_names() == ["empty", "orders"]
    result = read_stream(src, "empty", {"cursor": 0}, cursor_field="_ingest_seq")
    assert result.rows == 0 and result.states == [{"cursor": 0}]
