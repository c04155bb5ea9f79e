"""Alert rules on PostgreSQL metadata: CRUD, evaluation of API and CLI runs, and the signed
webhook notifications a real receiver on loopback gets (exact payloads)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli.main import app as cli
from aggregator.metadata.alert_models import AlertEvent
from aggregator.metadata.webhook_models import WebhookDelivery
from tests.integration.api.test_webhooks import Receiver, _create, _pipeline, _run
from tests.unit.api.helpers import Api
from tests.unit.security.localhttp import local_server

pytestmark = pytest.mark.integration
RULES = "/api/v1/alerts/rules"
EVENTS = "/api/v1/alerts/events"


@pytest.fixture
def api(pg_api: Api) -> Iterator[Api]:
    yield pg_api
    assert pg_api.app.state.platform.webhooks.wait_idle(30)


def _rule(api: Api, **body: Any) -> dict[str, Any]:
    r = api.client.post(RULES, json=body, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _alerts(api: Api, **params: str) -> list[dict[str, Any]]:
    r = api.client.get(EVENTS, params=params, headers=api.headers("operator"))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def _wait(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(receiver.verified) < count:
        assert time.monotonic() < deadline, f"{len(receiver.verified)} of {count} received"
        time.sleep(0.02)


def test_rule_crud_validation_permissions_and_audit(api: Api) -> None:
    with local_server() as server:
        hook = _create(api, server)
    rule = _rule(api, name="slow", condition="duration.above", threshold=60,
                 pipelines=["shop"], webhook_id=hook["id"])  # fmt: skip
    assert {k: rule[k] for k in ("name", "condition", "threshold", "pipelines", "webhook_id",
                                 "active", "created_by")} == {
        "name": "slow", "condition": "duration.above", "threshold": 60.0,
        "pipelines": ["shop"], "webhook_id": hook["id"], "active": True,
        "created_by": "user:editor@example.com",
    }  # fmt: skip
    bad = [
        ({"name": "a", "condition": "rows.below"}, "threshold: required by condition rows.below"),
        ({"name": "a", "condition": "run.failed", "threshold": 3},
         "threshold: condition run.failed takes none"),
        ({"name": "a", "condition": "run.failed", "webhook_id": "nope"},
         "webhook_id: no such webhook in this workspace"),
    ]  # fmt: skip
    for body, message in bad:
        r = api.client.post(RULES, json=body, headers=api.headers("editor"))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert (error["code"], error["message"]) == ("invalid_rule", message)
    r = api.client.post(RULES, json={"name": "slow", "condition": "run.failed"},
                        headers=api.headers("editor"))  # fmt: skip
    assert r.status_code == 409
    assert api.client.post(RULES, json={"name": "x", "condition": "run.failed"},
                           headers=api.headers("operator")).status_code == 403  # fmt: skip
    assert api.client.get(RULES, headers=api.headers("viewer")).status_code == 403
    assert [x["id"] for x in api.client.get(RULES, headers=api.headers("operator")).json()] == [
        rule["id"]
    ]
    rid = rule["id"]
    r = api.client.patch(f"{RULES}/{rid}", json={"condition": "run.failed", "threshold": None},
                         headers=api.headers("editor"))  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["condition"], r.json()["threshold"]) == ("run.failed", None)
    assert api.client.delete(f"{RULES}/{rid}", headers=api.headers("editor")).status_code == 204
    assert api.client.get(f"{RULES}/{rid}", headers=api.headers("editor")).status_code == 404
    audit = api.client.get(f"/api/v1/audit?object_id={rid}", headers=api.headers("admin")).json()
    assert sorted(e["action"] for e in audit) == [
        "alert_rule.created", "alert_rule.deleted", "alert_rule.updated",
    ]  # fmt: skip


def test_api_runs_raise_matching_alerts_and_notify_the_webhook(api: Api, tmp_path: Path) -> None:
    good = _pipeline(api, tmp_path, "al_good", str(tmp_path / "w.sqlite"))
    bad = _pipeline(api, tmp_path, "al_bad", "/proc/no-such-dir/w.sqlite")
    receiver = Receiver([200])
    with local_server(receiver) as server:
        hook = _create(api, server, events=["run.failed"], pipelines=["nothing-matches"])
        failed_rule = _rule(api, name="failed", condition="run.failed", webhook_id=hook["id"])
        few_rows = _rule(api, name="few", condition="rows.below", threshold=100,
                         pipelines=["al_good"], webhook_id=hook["id"])  # fmt: skip
        _rule(api, name="many", condition="rows.above", threshold=1000, webhook_id=hook["id"])
        _rule(api, name="other", condition="run.failed", pipelines=["elsewhere"])
        slow = _rule(api, name="slow", condition="duration.above", threshold=0)  # no webhook
        ok_run = _run(api, good)
        failed_run = _run(api, bad)
        _wait(receiver, 2)
        assert api.app.state.platform.webhooks.wait_idle(30)
    assert (ok_run["status"], failed_run["status"]) == ("succeeded", "failed")
    assert receiver.rejected == []
    # the webhook's own filter (run.failed of another pipeline) kept the run events away
    bodies = sorted((v["body"] for v in receiver.verified), key=lambda b: b["data"]["rule"]["name"])
    assert [b["type"] for b in bodies] == ["alert.triggered", "alert.triggered"]
    events = [v["headers"]["x-aggregator-event"] for v in receiver.verified]
    assert events == ["alert.triggered"] * 2
    failed_body, few_body = bodies
    failed_api = api.client.get(f"/api/v1/runs/{failed_run['run_id']}",
                                headers=api.headers("viewer")).json()  # fmt: skip
    error = failed_api["error"]
    assert failed_body["data"] == {
        "alert_id": failed_body["data"]["alert_id"],
        "rule": {"id": failed_rule["id"], "name": "failed", "condition": "run.failed",
                 "threshold": None},
        "pipeline": "al_bad",
        "run_id": failed_run["run_id"],
        "message": f"pipeline 'al_bad': run failed: {error}",
        "observed": {"error": error},
        "run": failed_body["data"]["run"],
    }  # fmt: skip
    same = ("run_id", "pipeline", "status", "error", "full_refresh", "streams")
    assert {k: failed_body["data"]["run"][k] for k in same} == {k: failed_api[k] for k in same}
    for stamp in ("started_at", "finished_at"):
        sent, shown = failed_body["data"]["run"][stamp], failed_api[stamp]
        assert datetime.fromisoformat(sent) == datetime.fromisoformat(shown)
    assert few_body["data"]["rule"] == {
        "id": few_rows["id"], "name": "few", "condition": "rows.below", "threshold": 100.0,
    }  # fmt: skip
    assert few_body["data"]["message"] == "pipeline 'al_good': 50 rows loaded (< 100)"
    assert few_body["data"]["observed"] == {"rows_loaded": 50, "threshold": 100.0}
    assert few_body["data"]["run"]["run_id"] == ok_run["run_id"]
    assert few_body["data"]["run"]["status"] == "succeeded"

    alerts = _alerts(api)
    got = sorted((a["rule_name"], a["run_id"], a["delivery_id"] is not None) for a in alerts)
    assert got == sorted([
        ("failed", failed_run["run_id"], True),
        ("few", ok_run["run_id"], True),
        ("slow", ok_run["run_id"], False),
        ("slow", failed_run["run_id"], False),
    ])  # fmt: skip
    assert [a["rule_name"] for a in _alerts(api, run_id=ok_run["run_id"], rule_id=slow["id"])] == [
        "slow"
    ]
    assert {a["pipeline"] for a in _alerts(api, pipeline="al_bad")} == {"al_bad"}
    delivered = {v["headers"]["x-aggregator-delivery"] for v in receiver.verified}
    assert delivered == {a["delivery_id"] for a in alerts if a["delivery_id"]}
    with api.store.session() as s:
        statuses = {s.get(WebhookDelivery, d).status for d in delivered}  # type: ignore[union-attr]
    assert statuses == {"delivered"}
    assert api.client.get(EVENTS, headers=api.headers("viewer")).status_code == 403


def _cli_pipeline(tmp_path: Path, rows: int, name: str = "cli_alerts") -> Path:
    lines = "".join(f"{i},{10 if i % 2 else 30}\n" for i in range(1, rows + 1))
    (tmp_path / "scores.csv").write_text("id,score\n" + lines)
    stream = {
        "name": "scores",
        "checks": [{"check": "range", "column": "score", "max": 20, "severity": "warn"}],
        "anomalies": {"metrics": ["row_count"], "min_history": 2, "threshold": 3.5},
    }
    spec = {
        "name": name,
        "sources": [{
            "name": "f", "type": "files",
            "config": {"streams": [{"name": "scores", "path": str(tmp_path / "scores.csv")}]},
            "streams": [stream],
        }],
        "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}},
    }  # fmt: skip
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_runs_send_webhooks_and_alerts_too(
    api: Api, tmp_path: Path, pg_metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aggregator run`` (not the API) notifies through the same outbox: run events and
    quality / anomaly alerts, for a pipeline file the control plane does not know."""
    settings = api.app.state.platform.settings
    monkeypatch.setenv("AGGREGATOR_HOME", str(settings.home))
    monkeypatch.setenv("AGGREGATOR_METADATA_URL", pg_metadata_url)
    receiver = Receiver([200])
    with local_server(receiver) as server:
        hook = _create(api, server, events=["run.succeeded"])
        quality = _rule(api, name="quality", condition="quality.failed", webhook_id=hook["id"])
        anomaly = _rule(api, name="anomaly", condition="anomaly.detected", webhook_id=hook["id"])
        runs = []
        for rows in (4, 4, 4, 40):
            result = CliRunner().invoke(cli, ["run", str(_cli_pipeline(tmp_path, rows)), "--json"])
            assert result.exit_code == 0, result.output
            runs.append(json.loads(result.stdout)["run_id"])
        _wait(receiver, 4 + 4 + 1)
    assert receiver.rejected == []
    by_type: dict[str, list[dict[str, Any]]] = {}
    for v in receiver.verified:
        by_type.setdefault(v["body"]["type"], []).append(v["body"]["data"])
    assert [d["run_id"] for d in by_type["run.succeeded"]] == runs
    alerts = by_type["alert.triggered"]
    assert sorted((a["rule"]["name"], runs.index(a["run_id"])) for a in alerts) == [
        ("anomaly", 3), ("quality", 0), ("quality", 1), ("quality", 2), ("quality", 3),
    ]  # fmt: skip
    first = next(a for a in alerts if a["rule"]["id"] == quality["id"] and a["run_id"] == runs[0])
    assert first["message"] == "pipeline 'cli_alerts': 1 quality checks failed"
    assert first["observed"] == {
        "count": 1,
        "results": [{
            "stream": "scores", "check": "stream 'scores': checks[0] (range)",
            "status": "warned", "failed": 2, "detail": first["observed"]["results"][0]["detail"],
        }],
    }  # fmt: skip
    flagged = next(a for a in alerts if a["rule"]["id"] == anomaly["id"])
    assert flagged["message"] == "pipeline 'cli_alerts': 1 anomalies flagged"
    assert flagged["observed"]["results"][0]["check"] == "stream 'scores': anomaly row_count"
    assert flagged["observed"]["results"][0]["detail"].startswith("row_count = 40, median 4,")
    with api.store.session() as s:
        recorded = s.query(AlertEvent).filter(AlertEvent.run_id.in_(runs)).count()
    assert recorded == 5
