"""The signed ingest endpoint: signatures (401, audited), size (413), payloads, duplicates,
and the management routes; secrets encrypted at rest and never shown again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aggregator.connectors.webhook.store import sign
from aggregator.metadata.control_models import AuditEvent
from aggregator.metadata.ingest_models import IngestEvent, IngestStream
from aggregator.security import audit
from tests.integration.webhook.conftest import SECRET, Hook

pytestmark = pytest.mark.integration


def post(hook: Hook, body: bytes, secret: str = SECRET, **headers: str) -> Any:
    sent = {"Content-Type": "application/json", "X-Signature-256": sign(secret, body), **headers}
    return hook.api.client.post(hook.endpoint, content=body, headers=sent)


def stored(hook: Hook) -> list[tuple[int, str, str]]:
    with hook.api.store.session() as s:
        rows = s.execute(
            select(IngestEvent.seq, IngestEvent.delivery_key, IngestEvent.payload)
            .where(IngestEvent.stream_id == hook.stream_id)
            .order_by(IngestEvent.seq)
        ).all()
    return [tuple(r) for r in rows]


def test_signed_events_are_stored_before_the_answer(hook: Hook) -> None:
    one = b'{"id": 1, "amount": "12.50"}'
    answer = post(hook, one)
    assert answer.status_code == 202
    assert answer.json() == {"stream": "orders", "first_seq": 1, "events": 1, "duplicate": False}
    batch = json.dumps([{"id": 2}, {"id": 3, "note": "x"}]).encode()
    answer = post(hook, batch, **{"Idempotency-Key": "delivery-7"})
    assert answer.status_code == 202
    assert answer.json()["first_seq"] == 2 and answer.json()["events"] == 2
    rows = stored(hook)
    assert [(seq, payload) for seq, _, payload in rows] == [
        (1, '{"id": 1, "amount": "12.50"}'),
        (2, '{"id": 2}'),
        (3, '{"id": 3, "note": "x"}'),
    ]
    assert rows[1][1] == rows[2][1] == "key:delivery-7"
    assert rows[0][1].startswith("sha256:")


def test_retried_delivery_is_acknowledged_once_stored(hook: Hook) -> None:
    body = b'{"id": 1}'
    assert post(hook, body, **{"Idempotency-Key": "k1"}).status_code == 202
    again = post(hook, body, **{"Idempotency-Key": "k1"})
    assert again.status_code == 200
    assert again.json() == {"stream": "orders", "first_seq": 1, "events": 1, "duplicate": True}
    # the same body without a key is identified by its SHA-256: once more new, then duplicate
    assert post(hook, body).json()["duplicate"] is False
    assert post(hook, body).json() == {
        "stream": "orders",
        "first_seq": 2,
        "events": 1,
        "duplicate": True,
    }
    # a different key makes it a new delivery
    assert post(hook, body, **{"Idempotency-Key": "k2"}).json()["first_seq"] == 3
    assert [seq for seq, _, _ in stored(hook)] == [1, 2, 3]


def test_bad_or_missing_signature_is_401_and_audited(hook: Hook) -> None:
    body = b'{"id": 1}'
    wrong = post(hook, body, secret="not-the-secret-at-all")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "bad_signature"
    assert SECRET not in wrong.text
    missing = hook.api.client.post(hook.endpoint, content=body)
    assert missing.status_code == 401
    # a user's bearer token is no substitute for the signature
    as_admin = hook.api.client.post(hook.endpoint, content=body, headers=hook.api.headers("admin"))
    assert as_admin.status_code == 401
    tampered = hook.api.client.post(
        hook.endpoint, content=b'{"id": 2}', headers={"X-Signature-256": sign(SECRET, body)}
    )
    assert tampered.status_code == 401
    assert stored(hook) == []
    with hook.api.store.session() as s:
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "ingest.signature_rejected")
                .order_by(AuditEvent.seq)
            )
        )
        assert audit.verify(s).ok
    assert [(e.outcome, e.object_id, e.actor, e.details["reason"]) for e in events] == [
        ("failure", hook.stream_id, "webhook", "signature mismatch"),
        ("failure", hook.stream_id, "webhook", "missing signature"),
        ("failure", hook.stream_id, "webhook", "missing signature"),
        ("failure", hook.stream_id, "webhook", "signature mismatch"),
    ]


def test_oversized_body_is_413_and_nothing_is_stored(hook: Hook) -> None:
    big = json.dumps({"id": 1, "note": "x" * 2100}).encode()  # the stream allows 2048 bytes
    answer = post(hook, big)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"
    assert "2048" in answer.json()["error"]["message"]
    # chunked, without a Content-Length: counted while reading
    chunked = hook.api.client.post(
        hook.endpoint,
        content=iter([big[:1000], big[1000:]]),
        headers={"X-Signature-256": sign(SECRET, big)},
    )
    assert chunked.status_code == 413
    assert stored(hook) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": 1', "not valid JSON"),
        (b"42", "JSON int, expected an object or array"),
        (b'[{"id": 1}, "two"]', "item 1 of the array is a str"),
        (b"[]", "no event"),
    ],
)
def test_payload_that_is_not_objects_is_422(hook: Hook, body: bytes, message: str) -> None:
    answer = post(hook, body)
    assert answer.status_code == 422
    assert message in answer.json()["error"]["message"]
    assert stored(hook) == []


def test_unknown_stream_is_404(hook: Hook) -> None:
    body = b"{}"
    for path in ("/api/v1/ingest/00000000-0000-0000-0000-00000000dead", "/api/v1/ingest/x"):
        answer = hook.api.client.post(
            path, content=body, headers={"X-Signature-256": sign(SECRET, body)}
        )
        assert answer.status_code == 404


def test_management_secret_at_rest_and_roles(hook: Hook) -> None:
    api = hook.api
    listed = api.client.get("/api/v1/ingest-streams", headers=api.headers("viewer"))
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()] == ["orders"]
    assert SECRET not in listed.text and "secret" not in listed.json()[0]
    with api.store.session() as s:
        row = s.scalar(select(IngestStream))
        assert row is not None and SECRET not in row.secret_ciphertext
        assert row.secret_ciphertext.startswith("v1.")
    # viewers cannot create; a generated secret is returned once and works
    denied = api.client.post(
        "/api/v1/ingest-streams", json={"name": "clicks"}, headers=api.headers("viewer")
    )
    assert denied.status_code == 403
    created = api.client.post(
        "/api/v1/ingest-streams",
        json={"name": "clicks", "signature_header": "X-Hub-Signature-256"},
        headers=api.headers("editor"),
    )
    assert created.status_code == 201
    generated = created.json()["secret"]
    assert len(generated) >= 40
    again = api.client.get(
        f"/api/v1/ingest-streams/{created.json()['id']}", headers=api.headers("viewer")
    )
    assert generated not in again.text
    body = b'{"click": 1}'
    ok = api.client.post(
        created.json()["endpoint"],
        content=body,
        headers={"X-Hub-Signature-256": sign(generated, body)},
    )
    assert ok.status_code == 202
    dupe = api.client.post(
        "/api/v1/ingest-streams", json={"name": "clicks"}, headers=api.headers("editor")
    )
    assert dupe.status_code == 409
    too_big = api.client.post(
        "/api/v1/ingest-streams",
        json={"name": "huge", "max_body_bytes": 10**9},
        headers=api.headers("editor"),
    )
    assert too_big.status_code == 422
    gone = api.client.delete(
        f"/api/v1/ingest-streams/{created.json()['id']}", headers=api.headers("editor")
    )
    assert gone.status_code == 204
    after = api.client.post(
        created.json()["endpoint"],
        content=body,
        headers={"X-Hub-Signature-256": sign(generated, body)},
    )
    assert after.status_code == 404


def test_ingest_has_its_own_rate_limit_bucket(tmp_path: Path) -> None:
    from aggregator.metadata.store import MetadataStore
    from tests.unit.api.helpers import make_api

    store = MetadataStore(f"sqlite:///{tmp_path / 'limited.db'}")
    api = make_api(tmp_path / "home", store, rate_limit_per_minute=3)
    with api.client:
        created = api.client.post(
            "/api/v1/ingest-streams",
            json={"name": "hits", "secret": SECRET},
            headers=api.headers("editor"),
        ).json()
        hook = Hook(api, "", created["id"], created["endpoint"])
        answers = [post(hook, json.dumps({"n": n}).encode()).status_code for n in range(4)]
        assert answers == [202, 202, 202, 429]
        assert api.login("viewer@example.com").status_code == 200  # logins: another bucket
    store.engine.dispose()
