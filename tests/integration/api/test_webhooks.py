"""Outbound webhooks on PostgreSQL metadata, delivered to a real receiver on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from aggregator.api.services.webhooks import WebhookDispatcher
from aggregator.metadata.store import MetadataStore
from aggregator.metadata.webhook_models import Webhook, WebhookDelivery
from aggregator.security import outbound, webhook_signing
from aggregator.security.outbound import OutboundPolicy
from tests.unit.api.helpers import Api, make_api
from tests.unit.security.localhttp import LocalServer, Seen, local_server

pytestmark = pytest.mark.integration
SECRET = "whsec-test-0123456789abcdefghij"
HOOKS = "/api/v1/webhooks"


class Receiver:
    """Answers with scripted statuses and verifies every signature it receives."""

    def __init__(self, statuses: list[int], secret: str = SECRET) -> None:
        self.statuses = list(statuses)
        self.secret = secret
        self.verified: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, req: Seen) -> tuple[int, dict[str, str], bytes]:
        try:
            webhook_signing.verify(self.secret, req.headers.get("x-aggregator-signature"), req.body)
            with self.lock:
                self.verified.append(
                    {"body": json.loads(req.body), "headers": req.headers, "path": req.path}
                )
        except webhook_signing.SignatureError as exc:
            self.rejected.append(str(exc))
            return 400, {}, b"bad signature"
        with self.lock:
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return status, {}, b""


@pytest.fixture
def api(pg_api: Api) -> Iterator[Api]:
    with pg_api.store.engine.begin() as conn:
        conn.execute(text("TRUNCATE webhooks, webhook_deliveries, webhook_attempts CASCADE"))
    yield pg_api


@pytest.fixture
def fast_api(tmp_path: Path, pg_metadata_url: str, clean_redis: str) -> Iterator[Api]:
    """Like ``pg_api`` but retries without waiting (backoff 0)."""
    store = MetadataStore(pg_metadata_url)
    with store.engine.begin() as conn:
        conn.execute(text(
            "TRUNCATE users, webhooks, webhook_deliveries, webhook_attempts, pipelines, "
            "pipeline_versions, auth_sessions, refresh_tokens, api_keys CASCADE"
        ))  # fmt: skip
    built = make_api(
        tmp_path / "home", store, redis_url=clean_redis, webhook_backoff_seconds=0,
        webhook_attempts=4,
    )  # fmt: skip
    with built.client:
        yield built
    store.engine.dispose()


def _create(api: Api, server: LocalServer, **extra: Any) -> dict[str, Any]:
    body = {
        "name": extra.pop("name", "ops"),
        "url": f"{server.url}/hook/T0KEN-in-path?token=q-secret",
        "secret": SECRET,
        "events": ["run.succeeded", "run.failed"],
        **extra,
    }
    r = api.client.post(HOOKS, json=body, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _deliveries(api: Api, webhook_id: str) -> list[dict[str, Any]]:
    r = api.client.get(f"{HOOKS}/{webhook_id}/deliveries", headers=api.headers("operator"))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def _received(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(receiver.verified) < count:
        assert time.monotonic() < deadline, f"{len(receiver.verified)} of {count} received"
        time.sleep(0.02)


def _idle(api: Api) -> None:
    assert api.app.state.platform.webhooks.wait_idle(30)


def test_crud_never_shows_url_path_or_secret_and_is_audited(api: Api) -> None:
    with local_server() as server:
        created = _create(api, server)
    assert created["url_display"] == f"http://127.0.0.1:{server.port}/…"
    assert set(created) == {
        "id", "name", "url_display", "events", "pipelines", "active", "created_by",
        "created_at", "updated_at",
    }  # fmt: skip
    wid = created["id"]
    texts = [
        api.client.get(HOOKS, headers=api.headers("viewer" if False else "operator")).text,
        api.client.get(f"{HOOKS}/{wid}", headers=api.headers("operator")).text,
        api.client.get("/api/v1/audit?object_id=" + wid, headers=api.headers("admin")).text,
    ]
    for body in texts:
        assert SECRET not in body and "T0KEN" not in body and "q-secret" not in body
    with api.store.session() as s:
        row = s.get(Webhook, wid)
        assert row is not None
        assert SECRET not in row.target_ciphertext and "T0KEN" not in row.target_ciphertext
    audit = api.client.get("/api/v1/audit?object_id=" + wid, headers=api.headers("admin"))
    assert [e["action"] for e in audit.json()] == ["webhook.created"]

    r = api.client.patch(
        f"{HOOKS}/{wid}", json={"secret": "a-new-secret-of-24-chars-or-more", "active": False},
        headers=api.headers("editor"),
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["active"] is False
    assert "a-new-secret" not in r.text
    assert api.client.post(f"{HOOKS}/{wid}/ping", headers=api.headers("editor")).status_code == 409
    assert api.client.get(HOOKS, headers=api.headers("viewer")).status_code == 403
    assert (
        api.client.post(f"{HOOKS}/{wid}/ping", headers=api.headers("operator")).status_code == 403
    )
    r = api.client.delete(f"{HOOKS}/{wid}", headers=api.headers("editor"))
    assert r.status_code == 204
    audit = api.client.get("/api/v1/audit?object_id=" + wid, headers=api.headers("admin"))
    actions = [e["action"] for e in audit.json()]
    assert sorted(actions) == ["webhook.created", "webhook.deleted", "webhook.updated"]
    assert "a-new-secret" not in audit.text
    assert api.client.get(f"{HOOKS}/{wid}", headers=api.headers("editor")).status_code == 404


def test_invalid_and_blocked_targets_are_refused(api: Api) -> None:
    cases = [
        ("http://169.254.169.254/latest/meta-data/", "unsafe_url",
         "url: outbound connection to 169.254.169.254 (169.254.169.254) refused: link-local"),
        ("http://[fd00:ec2::254]/", "unsafe_url", "url: outbound connection to fd00:ec2::254"),
        ("ftp://example.com/hook", "invalid_url", "url: an http or https URL"),
        ("https://user:pw@example.com/hook", "invalid_url", "url: credentials in the URL"),
    ]  # fmt: skip
    for url, code, message in cases:
        body = {"name": "x", "url": url, "secret": SECRET, "events": ["run.failed"]}
        r = api.client.post(HOOKS, json=body, headers=api.headers("editor"))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"].startswith(message), r.json()
    short = {
        "name": "x",
        "url": "https://example.com/h",
        "secret": "short",
        "events": ["run.failed"],
    }
    assert api.client.post(HOOKS, json=short, headers=api.headers("editor")).status_code == 422


def _pipeline(api: Api, tmp_path: Path, name: str, destination: str) -> str:
    yaml = (
        f"name: {name}\nsources:\n  - name: seq\n    type: test_sequence\n"
        f"    config: {{rows: 50, batch: 25}}\ndestination:\n  type: sqlite\n"
        f'  config: {{path: "{destination}"}}\n'
    )
    r = api.client.post("/api/v1/pipelines", json={"yaml": yaml}, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _run(api: Api, pipeline_id: str) -> dict[str, Any]:
    r = api.client.post(
        f"/api/v1/pipelines/{pipeline_id}/runs", json={}, headers=api.headers("operator")
    )
    assert r.status_code in (200, 201, 202), r.text
    run_id = r.json()["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.client.get(
            f"/api/v1/runs/{run_id}", headers=api.headers("viewer")
        ).json()
        if run["status"] not in ("running", "queued", "pending"):
            return run
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_run_events_are_signed_and_filtered(api: Api, tmp_path: Path) -> None:
    good = _pipeline(api, tmp_path, "wh_good", str(tmp_path / "w.sqlite"))
    bad = _pipeline(api, tmp_path, "wh_bad", "/proc/no-such-dir/w.sqlite")
    receiver = Receiver([204])
    failures_only = Receiver([200])
    with local_server(receiver) as server, local_server(failures_only) as other:
        all_runs = _create(api, server)
        _create(api, other, name="failures", events=["run.failed"], pipelines=["wh_bad"])
        ok_run = _run(api, good)
        _received(receiver, 1)  # the event is emitted just after the run is recorded
        failed_run = _run(api, bad)
        _received(receiver, 2)
        _received(failures_only, 1)
        _idle(api)
    assert ok_run["status"] == "succeeded" and failed_run["status"] == "failed"
    assert receiver.rejected == [] and failures_only.rejected == []
    got = [(v["body"]["type"], v["body"]["data"]["run_id"]) for v in receiver.verified]
    assert got == [("run.succeeded", ok_run["run_id"]), ("run.failed", failed_run["run_id"])]
    first = receiver.verified[0]
    assert first["path"] == "/hook/T0KEN-in-path?token=q-secret"
    assert first["headers"]["x-aggregator-event"] == "run.succeeded"
    assert first["body"]["data"]["pipeline"] == "wh_good"
    assert first["body"]["data"]["status"] == "succeeded"
    assert [v["body"]["type"] for v in failures_only.verified] == ["run.failed"]
    log = _deliveries(api, all_runs["id"])
    assert [(d["event"], d["status"], len(d["attempts"])) for d in log] == [
        ("run.failed", "delivered", 1),
        ("run.succeeded", "delivered", 1),
    ]
    assert log[1]["attempts"][0]["status_code"] == 204
    assert first["headers"]["x-aggregator-delivery"] == log[1]["id"]


def test_retries_on_500_until_delivered_and_records_each_attempt(fast_api: Api) -> None:
    api = fast_api
    receiver = Receiver([500, 503, 200])
    with local_server(receiver) as server:
        hook = _create(api, server)
        r = api.client.post(f"{HOOKS}/{hook['id']}/ping", headers=api.headers("editor"))
        assert r.status_code == 202
        _idle(api)
    assert receiver.rejected == []
    assert len(receiver.verified) == 3
    assert {v["headers"]["x-aggregator-delivery"] for v in receiver.verified} == {
        r.json()["delivery_id"]
    }
    assert {v["body"]["id"] for v in receiver.verified} == {receiver.verified[0]["body"]["id"]}
    (delivery,) = _deliveries(api, hook["id"])
    assert delivery["status"] == "delivered" and delivery["event"] == "ping"
    assert [(a["number"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (1, 500, "HTTP 500"),
        (2, 503, "HTTP 503"),
        (3, 200, None),
    ]


def test_gives_up_after_the_attempt_budget_and_never_retries_4xx(fast_api: Api) -> None:
    api = fast_api
    always_500 = Receiver([500])
    gone = Receiver([410])
    with local_server(always_500) as server, local_server(gone) as other:
        a = _create(api, server, name="a")
        b = _create(api, other, name="b")
        api.client.post(f"{HOOKS}/{a['id']}/ping", headers=api.headers("editor"))
        api.client.post(f"{HOOKS}/{b['id']}/ping", headers=api.headers("editor"))
        _idle(api)
    (da,) = _deliveries(api, a["id"])
    assert da["status"] == "failed" and len(da["attempts"]) == 4  # webhook_attempts=4
    (db,) = _deliveries(api, b["id"])
    assert db["status"] == "failed"
    assert [(x["status_code"], x["error"]) for x in db["attempts"]] == [(410, "HTTP 410")]


def test_connection_errors_are_retried(fast_api: Api) -> None:
    api = fast_api
    with local_server() as server:
        hook = _create(api, server)
    # the server is gone: connection refused on every attempt
    api.client.post(f"{HOOKS}/{hook['id']}/ping", headers=api.headers("editor"))
    _idle(api)
    (d,) = _deliveries(api, hook["id"])
    assert d["status"] == "failed"
    assert [(x["status_code"], x["error"]) for x in d["attempts"]] == [(None, "ConnectError")] * 4


def test_target_resolving_to_a_blocked_address_later_is_refused(fast_api: Api) -> None:
    """DNS changes after creation: the delivery is refused at connect time, not retried."""
    api = fast_api
    answers = {"hooks.test": ["127.0.0.1"]}
    outbound.configure(OutboundPolicy.build(False, [], lambda host, port: answers[host]))
    try:
        receiver = Receiver([200])
        with local_server(receiver) as server:
            body = {"name": "dns", "url": f"http://hooks.test:{server.port}/h",
                    "secret": SECRET, "events": ["run.failed"]}  # fmt: skip
            r = api.client.post(HOOKS, json=body, headers=api.headers("editor"))
            assert r.status_code == 201, r.text
            hook = r.json()
            api.client.post(f"{HOOKS}/{hook['id']}/ping", headers=api.headers("editor"))
            _idle(api)
            answers["hooks.test"] = ["169.254.169.254"]
            api.client.post(f"{HOOKS}/{hook['id']}/ping", headers=api.headers("editor"))
            _idle(api)
    finally:
        outbound.configure(None)
    assert len(receiver.verified) == 1
    newest, oldest = _deliveries(api, hook["id"])
    assert oldest["status"] == "delivered"
    assert newest["status"] == "failed"
    assert [(x["status_code"], x["error"]) for x in newest["attempts"]] == [
        (None, "outbound connection to hooks.test (169.254.169.254) refused: "
         "link-local / cloud metadata")
    ]  # fmt: skip


def test_pending_deliveries_resume_at_start(fast_api: Api) -> None:
    """A delivery written before a crash (still pending) is sent once by the next start."""
    api = fast_api
    receiver = Receiver([200])
    with local_server(receiver) as server:
        hook = _create(api, server)
        delivery_id = str(uuid.uuid4())
        payload = {"id": "evt-1", "type": "run.failed", "created_at": "x", "data": {}}
        with api.store.session() as s:
            s.add(WebhookDelivery(
                id=delivery_id, webhook_id=hook["id"], event_id="evt-1", event="run.failed",
                payload=payload, status="pending", attempts=0, created_at=datetime.now(UTC),
            ))  # fmt: skip
            s.commit()
        platform = api.app.state.platform
        other_worker = WebhookDispatcher(platform.store, platform.box, platform.settings)
        try:  # two API workers start and resume the same outbox: one request is sent
            assert platform.webhooks.resume() == 1
            assert other_worker.resume() == 1
            assert other_worker.wait_idle(30)
            _idle(api)
        finally:
            other_worker.close()
    assert [v["body"]["id"] for v in receiver.verified] == ["evt-1"]
    with api.store.session() as s:
        row = s.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
        assert row is not None and row.status == "delivered" and row.attempts == 1
