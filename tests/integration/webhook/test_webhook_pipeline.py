"""End to end: events POSTed over real HTTP (uvicorn) -> the webhook source -> DuckDB,
incrementally, with quarantine; and concurrent deliveries on PostgreSQL keep their order."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import uvicorn

from aggregator.connectors.webhook import WebhookSource
from aggregator.connectors.webhook import store as ingest_store
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec
from aggregator.security.crypto import SecretBox, generate_key
from aggregator.security.identity import DEFAULT_WORKSPACE
from aggregator.testing import read_stream
from tests.integration.api.pgdb import fresh_database
from tests.integration.webhook.conftest import SECRET, Hook

pytestmark = pytest.mark.integration


@pytest.fixture
def served(hook: Hook) -> Iterator[str]:
    """The hook's app served by uvicorn on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(hook.api.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}{hook.endpoint}"
    finally:
        server.should_exit = True
        thread.join(10)


def send(url: str, events: Any, key: str | None = None) -> httpx.Response:
    body = json.dumps(events).encode()
    headers = {"X-Signature-256": ingest_store.sign(SECRET, body)}
    if key:
        headers["Idempotency-Key"] = key
    return httpx.post(url, content=body, headers=headers, timeout=10)


def spec(hook: Hook, tmp: Path) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "hooks",
            "sources": [
                {
                    "name": "shop_hooks",
                    "type": "webhook",
                    "config": {"metadata_url": hook.url, "streams": ["orders"]},
                    "streams": [
                        {
                            "name": "orders",
                            "sync_mode": "incremental",
                            "cursor_field": "_ingest_seq",
                            "primary_key": ["_ingest_seq"],
                            "write_mode": "append",
                            "columns": {"amount": "decimal(12,2)"},
                        }
                    ],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp / "wh.duckdb")}},
        }
    )


def test_posted_events_flow_into_duckdb_incrementally(
    hook: Hook, served: str, tmp_path: Path
) -> None:
    first = [
        {"id": 1, "amount": "12.50", "at": "2024-05-01T10:00:00+02:00", "tags": ["a"]},
        {"id": 2, "amount": "3.05", "at": "2024-05-01T11:00:00Z", "tags": []},
    ]
    assert send(served, first, key="d1").status_code == 202
    assert send(served, {"id": 3, "amount": "9999999999.99", "at": None}).status_code == 202
    assert send(served, first, key="d1").json()["duplicate"] is True  # sender retried
    pipeline = spec(hook, tmp_path)
    store = MetadataStore(f"sqlite:///{tmp_path / 'runs.db'}")
    record = LocalEngine(store).run(pipeline)
    assert record.status == "succeeded", record.error
    (orders,) = record.streams
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (3, 3, 0)
    assert orders.state == {"cursor": 3}

    # a second delivery: one event whose `id` cannot be typed with the others -> quarantine
    assert send(served, [{"id": 4, "amount": "1.00"}, {"id": {"nested": True}}]).status_code == 202
    record = LocalEngine(store).run(pipeline)
    (orders,) = record.streams
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (2, 1, 1)
    assert LocalEngine(store).run(pipeline).streams[0].rows_read == 0

    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        rows = con.execute(
            'select _ingest_seq, id, amount::varchar, "at", tags from orders order by 1'
        ).fetchall()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'orders'"
            ).fetchall()
        )
        quarantined = con.execute("select position, reason, raw from orders__quarantine").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, 1, "12.50"),
        (2, 2, "3.05"),
        (3, 3, "9999999999.99"),
        (4, 4, "1.00"),
    ]
    assert rows[0][3].timestamp() == 1714550400.0  # 10:00 at +02:00 is 08:00 UTC
    assert rows[2][3] is None and rows[0][4] == ["a"]
    assert types["amount"] == "DECIMAL(12,2)" and types["_ingest_received_at"].startswith(
        "TIMESTAMP"
    )
    assert [(p, json.loads(raw)) for p, _, raw in quarantined] == [
        ("orders:event 5", {"id": {"nested": True}})
    ]


def test_discover_reports_keys_cursor_size_and_json_types(hook: Hook) -> None:
    for body in ({"id": 1, "amount": 2.5, "ok": True}, {"id": 2, "amount": 3.5, "ok": False}):
        data = json.dumps(body).encode()
        headers = {"X-Signature-256": ingest_store.sign(SECRET, data)}
        assert hook.api.client.post(hook.endpoint, content=data, headers=headers).status_code == 202
    src = WebhookSource.from_config({"metadata_url": hook.url})
    assert isinstance(src, WebhookSource)
    assert src.check().ok
    (stream,) = src.discover().streams
    assert stream.schema.names == ["_ingest_seq", "id", "amount", "ok", "_ingest_received_at"]
    assert stream.primary_key == ("_ingest_seq",) and stream.cursor_candidates == ("_ingest_seq",)
    meta = stream.metadata
    assert meta["estimated_rows"] == 2 and meta["estimated_bytes"] > 40
    assert meta["declared_types"] == {
        "_ingest_seq": "integer",
        "id": "integer",
        "amount": "number",
        "ok": "boolean",
        "_ingest_received_at": "string (date-time)",
    }
    missing = WebhookSource.from_config({"metadata_url": hook.url, "streams": ["nope"]})
    result = missing.check()
    assert not result.ok and "no ingest stream 'nope'" in result.message


def test_concurrent_deliveries_on_postgres_are_numbered_in_commit_order(pg_url: str) -> None:
    with fresh_database(pg_url) as url:
        store = MetadataStore(url)
        box = SecretBox(generate_key())
        try:
            with store.session() as s:
                row = ingest_store.create_stream(s, box, DEFAULT_WORKSPACE, "clicks", "s" * 20)
                s.commit()
                stream_id = row.id

            def deliver(n: int) -> ingest_store.Receipt:
                events = [json.dumps({"n": n, "part": p}) for p in range(n % 3 + 1)]
                with store.session() as s:
                    return ingest_store.receive(s, stream_id, events, f"key:{n % 40}")

            with ThreadPoolExecutor(8) as pool:
                receipts = list(pool.map(deliver, range(80)))
            fresh = [r for r in receipts if not r.duplicate]
            assert len(fresh) == 40 and all(r.duplicate for r in receipts if r not in fresh)
            total = sum(r.count for r in fresh)
            src = WebhookSource.from_config(
                {"metadata_url": url, "streams": ["clicks"], "batch_size": 7}
            )
            result = read_stream(src, "clicks", None, cursor_field="_ingest_seq")
            seqs = result.table.column("_ingest_seq").to_pylist()
            assert seqs == list(range(1, total + 1))
            assert result.states[-1] == {"cursor": total}
            again = read_stream(src, "clicks", result.states[-1], cursor_field="_ingest_seq")
            assert again.rows == 0
        finally:
            store.engine.dispose()
