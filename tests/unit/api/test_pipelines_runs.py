"""Pipelines (YAML and JSON, validated, versioned, connection references) and runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api.helpers import SECRET, Api

pytestmark = pytest.mark.unit
URL = "/api/v1/pipelines"


def _yaml(tmp_path: Path, name: str = "seq_api", rows: int = 250) -> str:
    return f"""\
name: {name}
sources:
  - name: seq
    type: test_sequence
    config: {{rows: {rows}, batch: 100}}
destination:
  type: sqlite
  config: {{path: "{tmp_path / "warehouse.sqlite"}"}}
"""


def _wait(api: Api, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.client.get(
            f"/api/v1/runs/{run_id}", headers=api.headers("viewer")
        ).json()
        if run["status"] != "running":
            return run
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_yaml_pipeline_versions_and_run(api: Api, tmp_path: Path) -> None:
    editor = api.headers("editor")
    r = api.client.post(URL, json={"yaml": _yaml(tmp_path)}, headers=editor)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["version"] == 1
    r = api.client.put(f"{URL}/{pid}", json={"yaml": _yaml(tmp_path, rows=300)}, headers=editor)
    assert r.json()["version"] == 2
    versions = api.client.get(f"{URL}/{pid}/versions", headers=api.headers("viewer")).json()
    assert [(v["version"], v["change"]) for v in versions] == [(1, "created"), (2, "updated")]
    assert all(v["author_id"] == api.users["editor"].id for v in versions)
    assert "rows: 250" in versions[0]["source_text"]
    one = api.client.get(f"{URL}/{pid}/versions/1", headers=api.headers("viewer"))
    assert one.json()["spec"]["sources"][0]["config"]["rows"] == 250

    accepted = api.client.post(f"{URL}/{pid}/runs", json={}, headers=api.headers("operator"))
    assert accepted.status_code == 202, accepted.text
    run = _wait(api, accepted.json()["run_id"])
    assert run["status"] == "succeeded" and run["pipeline"] == "seq_api"
    metrics = api.client.get(
        f"/api/v1/runs/{run['run_id']}/metrics", headers=api.headers("viewer")
    ).json()
    assert [(m["name"], m["rows_read"], m["rows_loaded"]) for m in metrics] == [
        ("numbers", 300, 300)
    ]
    listed = api.client.get("/api/v1/runs?pipeline=seq_api", headers=api.headers("viewer"))
    assert [x["run_id"] for x in listed.json()] == [run["run_id"]]
    actions = [
        e["action"] for e in api.client.get("/api/v1/audit", headers=api.headers("admin")).json()
    ]
    assert actions == ["pipeline.created", "pipeline.updated", "run.triggered"]


def test_invalid_specs_name_line_and_field(api: Api, tmp_path: Path) -> None:
    editor = api.headers("editor")
    bad = _yaml(tmp_path).replace("batch: 100", "batch: 100, bogus: 1")
    r = api.client.post(URL, json={"yaml": bad}, headers=editor)
    assert r.status_code == 422
    assert "pipeline:5" in r.json()["error"]["message"]
    assert "bogus" in r.json()["error"]["message"]
    r = api.client.post(URL, json={"yaml": "name: [unclosed"}, headers=editor)
    assert r.status_code == 422 and "YAML syntax" in r.json()["error"]["message"]
    r = api.client.post(URL, json={"spec": {"name": "x"}, "yaml": "x"}, headers=editor)
    assert r.status_code == 422
    ok = api.client.post(URL, json={"yaml": _yaml(tmp_path)}, headers=editor)
    assert ok.status_code == 201
    dup = api.client.post(URL, json={"spec": ok.json()["spec"]}, headers=editor)
    assert dup.status_code == 409
    env = _yaml(tmp_path, "env_pipe").replace("warehouse.sqlite", "${HOME}.sqlite")
    r = api.client.post(URL, json={"yaml": env}, headers=editor)
    assert "${HOME}" in r.json()["spec"]["destination"]["config"]["path"]  # not interpolated


def test_connection_reference_keeps_secrets_out_of_pipelines(api: Api, tmp_path: Path) -> None:
    editor = api.headers("editor")
    conn = {"name": "v", "connector": "test_vault", "kind": "source",
            "config": {"password": SECRET}}  # fmt: skip
    assert api.client.post("/api/v1/connections", json=conn, headers=editor).status_code == 201
    spec = {
        "name": "ref_pipe",
        "sources": [{"name": "s", "connection": "v", "streams": []}],
        "destination": {"type": "sqlite", "config": {"path": str(tmp_path / "w.sqlite")}},
    }
    r = api.client.post(URL, json={"spec": spec}, headers=editor)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["sources"][0] == {"name": "s", "connection": "v", "streams": []}
    assert SECRET not in r.text
    inline = {**spec, "name": "inline_pipe"}
    inline["sources"] = [{"name": "s", "type": "test_vault", "config": {"password": SECRET}}]
    r = api.client.post(URL, json={"spec": inline}, headers=editor)
    assert r.status_code == 422 and r.json()["error"]["code"] == "inline_secret"
    assert SECRET not in r.text
    missing = {**spec, "name": "missing_pipe", "sources": [{"name": "s", "connection": "nope"}]}
    assert api.client.post(URL, json={"spec": missing}, headers=editor).status_code == 422


def test_second_trigger_while_running_is_409(api: Api, tmp_path: Path) -> None:
    slow = _yaml(tmp_path, "slow_pipe", rows=2000).replace("batch: 100", "batch: 100, delay: 0.05")
    pid = api.client.post(URL, json={"yaml": slow}, headers=api.headers("editor")).json()["id"]
    op = api.headers("operator")
    first = api.client.post(f"{URL}/{pid}/runs", json={}, headers=op)
    assert first.status_code == 202
    second = api.client.post(f"{URL}/{pid}/runs", json={}, headers=op)
    assert second.status_code == 409 and second.json()["error"]["code"] == "run_in_progress"
    assert _wait(api, first.json()["run_id"])["status"] == "succeeded"


def test_delete_pipeline_keeps_audit(api: Api, tmp_path: Path) -> None:
    editor = api.headers("editor")
    pid = api.client.post(URL, json={"yaml": _yaml(tmp_path)}, headers=editor).json()["id"]
    assert api.client.delete(f"{URL}/{pid}", headers=editor).status_code == 204
    assert api.client.get(f"{URL}/{pid}", headers=editor).status_code == 404
    events = api.client.get("/api/v1/audit?action=pipeline.deleted", headers=api.headers("admin"))
    assert events.json()[0]["details"]["name"] == "seq_api"
