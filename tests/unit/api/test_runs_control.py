"""Runs through the API: cooperative cancel (in this process and through the database),
captured logs with paging and level filters, live and final per-stream metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pytest

from aggregator.api.services import runs as run_svc
from aggregator.connectors import registry
from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.core.catalog import Catalog, ConfiguredStream
from aggregator.core.messages import Checkpoint, Log, Message, Records
from aggregator.metadata.lineage_models import RunControl
from tests.unit.api.helpers import Api

pytestmark = pytest.mark.unit
URL = "/api/v1/pipelines"


class ChattyConfig(ConnectorConfig):
    """``lines`` log lines (every third a warning), then one batch of 3 rows."""

    lines: int = 25


class ChattySource(Source[ChattyConfig]):
    """A source that talks: each ``Log`` message must reach the run log."""

    name: ClassVar[str] = "test_chatty"
    config_model = ChattyConfig

    def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    def discover(self) -> Catalog:
        return Catalog(())

    def stream_names(self) -> list[str]:
        return ["talk"]

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        for i in range(1, self.config.lines + 1):
            yield Log("warning" if i % 3 == 0 else "info", f"line {i}")
        yield Records(pa.RecordBatch.from_pydict({"id": pa.array([1, 2, 3], pa.int64())}))
        yield Checkpoint({"done": True})


if not any(c.name == "test_chatty" for c in registry.all_connectors()):
    registry.register(ChattySource)


def _slow_pipeline(tmp_path: Path, name: str = "slow_seq") -> dict[str, Any]:
    return {
        "name": name,
        "sources": [
            {
                "name": "gen",
                "type": "test_sequence",
                "config": {"rows": 1_000_000, "batch": 50, "delay": 0.02},
                "streams": [{"name": "numbers", "cursor_field": "id", "primary_key": ["id"]}],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}},
    }


def _create(api: Api, spec: dict[str, Any]) -> str:
    r = api.client.post(URL, json={"spec": spec}, headers=api.headers("editor"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _trigger(api: Api, pid: str) -> str:
    r = api.client.post(f"{URL}/{pid}/runs", json={}, headers=api.headers("operator"))
    assert r.status_code == 202, r.text
    return str(r.json()["run_id"])


def _get(api: Api, path: str) -> Any:
    r = api.client.get(f"/api/v1/runs/{path}", headers=api.headers("viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def _wait(api: Api, run_id: str, until: Any, what: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} of run {run_id}")


def _finished(api: Api, run_id: str) -> dict[str, Any]:
    return _wait(  # type: ignore[no-any-return]
        api,
        run_id,
        lambda: (run := _get(api, run_id))["status"] != "running" and run,
        "the end",
    )


def _committed_rows(api: Api, run_id: str) -> int:
    metrics = _get(api, f"{run_id}/metrics")
    return int(metrics[0]["rows_loaded"]) if metrics else 0


def _assert_consistent(tmp_path: Path, run: dict[str, Any]) -> int:
    """The table holds exactly the rows 1..N of the committed checkpoints, no more."""
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        count, top = con.execute("SELECT count(*), coalesce(max(id), 0) FROM numbers").fetchone()
        (state,) = con.execute(
            "SELECT state FROM _aggregator_state ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    assert count == top and count % 50 == 0 and count > 0
    assert f'"after": {top}' in state
    return int(count)


def test_cancel_in_process_stops_at_a_batch_boundary(api: Api, tmp_path: Path) -> None:
    run_id = _trigger(api, _create(api, _slow_pipeline(tmp_path)))
    _wait(api, run_id, lambda: _committed_rows(api, run_id) >= 100, "live metrics")
    live = _get(api, f"{run_id}/metrics")[0]
    assert live["status"] == "running" and live["name"] == "numbers"
    assert live["rows_read"] >= live["rows_loaded"] >= 100 and live["seconds"] > 0

    viewer = api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=api.headers("viewer"))
    assert viewer.status_code == 403
    r = api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=api.headers("operator"))
    assert r.status_code == 202, r.text
    run = _finished(api, run_id)
    assert run["status"] == "cancelled"
    assert [s["status"] for s in run["streams"]] == ["cancelled"]
    rows = _assert_consistent(tmp_path, run)
    assert rows < 1_000_000

    again = api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=api.headers("operator"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_running"
    logs = _get(api, f"{run_id}/logs?limit=1000")["lines"]
    messages = [line["message"] for line in logs]
    assert messages[0] == "run started with streams: numbers"
    assert any(m.startswith("checkpoint committed") for m in messages)
    assert messages[-2].startswith("stream cancelled:") and logs[-2]["level"] == "error"
    assert messages[-1].startswith("run cancelled in ")
    assert messages[-1].endswith(": cancelled at a batch boundary")
    audit = api.client.get("/api/v1/audit", headers=api.headers("admin")).json()
    cancels = [e for e in audit if e["action"] == "run.cancel_requested"]
    assert [(e["object_id"], e["actor"]) for e in cancels] == [
        (run_id, "user:operator@example.com")
    ]


def test_cancel_from_another_process_goes_through_the_database(api: Api, tmp_path: Path) -> None:
    run_id = _trigger(api, _create(api, _slow_pipeline(tmp_path, "slow_seq_db")))
    _wait(api, run_id, lambda: _committed_rows(api, run_id) >= 50, "a checkpoint")
    # Another uvicorn worker has no handle on this engine: it only writes the request.
    with run_svc._engines_lock:
        engine = run_svc._engines.pop(run_id)
    r = api.client.post(f"/api/v1/runs/{run_id}/cancel", headers=api.headers("editor"))
    assert r.status_code == 202, r.text
    with api.store.session() as s:
        control = s.get(RunControl, run_id)
        assert control is not None and control.cancel_requested_at is not None
        assert control.cancel_requested_by == "user:editor@example.com"
    run = _finished(api, run_id)
    assert engine.cancel_event.is_set()
    assert run["status"] == "cancelled"
    _assert_consistent(tmp_path, run)


def test_unknown_and_foreign_runs_are_404(api: Api) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for path in (f"{missing}/logs", f"{missing}/metrics"):
        r = api.client.get(f"/api/v1/runs/{path}", headers=api.headers("viewer"))
        assert r.status_code == 404
    r = api.client.post(f"/api/v1/runs/{missing}/cancel", headers=api.headers("operator"))
    assert r.status_code == 404


def test_logs_are_captured_paged_and_filtered(api: Api, tmp_path: Path) -> None:
    spec = {
        "name": "chatty",
        "sources": [{"name": "c", "type": "test_chatty", "config": {"lines": 25}}],
        "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "c.duckdb")}},
    }
    run_id = _trigger(api, _create(api, spec))
    run = _finished(api, run_id)
    assert run["status"] == "succeeded"

    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = _get(api, f"{run_id}/logs?after_seq={after}&limit=7")
        lines += page["lines"]
        after = page["next_after_seq"]
        if not page["has_more"]:
            break
    seqs = [line["seq"] for line in lines]
    assert seqs == list(range(1, len(lines) + 1))
    source_lines = [line["message"] for line in lines if line["message"].startswith("line ")]
    assert source_lines == [f"line {i}" for i in range(1, 26)]
    assert lines[-2]["message"].startswith("stream succeeded: 3 rows read, 3 loaded")
    assert lines[-1]["message"].startswith("run succeeded in ") and lines[-1]["stream"] is None

    warnings = _get(api, f"{run_id}/logs?level=warning&limit=1000")["lines"]
    assert [w["message"] for w in warnings] == [f"line {i}" for i in range(3, 26, 3)]
    assert {w["stream"] for w in warnings} == {"talk"}
    other = _get(api, f"{run_id}/logs?stream=nope")["lines"]
    assert other == []
    metrics = _get(api, f"{run_id}/metrics")
    assert [
        (m["name"], m["rows_read"], m["rows_loaded"], m["rows_quarantined"]) for m in metrics
    ] == [("talk", 3, 3, 0)]
