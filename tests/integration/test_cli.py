"""The `aggregator` command end to end (in-process through typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli.main import app
from tests.support import pipeline_dict

pytestmark = pytest.mark.integration
runner = CliRunner()


def _pipeline(tmp_path: Path, **config: object) -> Path:
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(pipeline_dict(str(tmp_path), "merge", **config)))
    return path


def test_connectors_list_json_names_every_builtin() -> None:
    result = runner.invoke(app, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    found = {(c["name"], c["kind"]) for c in json.loads(result.stdout)}
    assert {
        ("files", "source"),
        ("sqlite", "source"),
        ("duckdb", "destination"),
        ("files", "destination"),
        ("sqlite", "destination"),
    } <= found


def test_connectors_spec_prints_json_schema() -> None:
    result = runner.invoke(app, ["connectors", "spec", "duckdb"])
    assert result.exit_code == 0
    assert "path" in json.loads(result.stdout)["properties"]
    unknown = runner.invoke(app, ["connectors", "spec", "nope"])
    assert unknown.exit_code == 2
    assert "unknown connector 'nope'" in unknown.stderr


def test_run_json_then_runs_and_state(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, rows=120, batch=50)
    result = runner.invoke(app, ["run", str(pipeline), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "succeeded"
    (stream,) = out["streams"]
    assert {k: stream[k] for k in ("name", "rows_read", "rows_loaded", "rows_quarantined")} == {
        "name": "numbers",
        "rows_read": 120,
        "rows_loaded": 120,
        "rows_quarantined": 0,
    }
    assert stream["seconds"] >= 0

    listed = json.loads(runner.invoke(app, ["runs", "list", "--json"]).stdout)
    assert [r["run_id"] for r in listed] == [out["run_id"]]
    shown = runner.invoke(app, ["runs", "show", out["run_id"][:8]])
    assert shown.exit_code == 0 and "numbers" in shown.stdout

    state = runner.invoke(app, ["state", "show", str(pipeline)])
    assert json.loads(state.stdout) == {"numbers": {"after": 120}}
    reset = runner.invoke(app, ["state", "reset", str(pipeline), "--yes"])
    assert reset.exit_code == 0
    assert json.loads(runner.invoke(app, ["state", "show", str(pipeline)]).stdout) == {
        "numbers": None
    }


def test_config_error_exits_2_with_located_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("name: x\nsources:\n  - name: a\n    type: test_sequence\n    confg: {}\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert (
        f"{path}:5: sources.0.confg: unknown key 'confg'; did you mean 'config'?" in result.stderr
    )
    assert "Traceback" not in result.output


def test_failed_run_exits_1(tmp_path: Path) -> None:
    spec = pipeline_dict(str(tmp_path), "merge", rows=10)
    spec["sources"][0]["streams"][0]["primary_key"] = ["missing"]
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["run", str(path), "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "failed"
    assert "primary key column 'missing' is not in the data" in out["streams"][0]["error"]


def test_preview_check_discover(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, rows=30, batch=10)
    preview = runner.invoke(app, ["preview", str(pipeline), "-s", "numbers", "-n", "12", "--json"])
    assert preview.exit_code == 0, preview.output
    rows = json.loads(preview.stdout)
    assert [r["id"] for r in rows] == list(range(1, 13))
    check = runner.invoke(app, ["check", str(pipeline)])
    assert check.exit_code == 0
    assert [line.split()[0] for line in check.stdout.splitlines()] == ["ok", "ok"]
    discovered = json.loads(runner.invoke(app, ["discover", str(pipeline), "--json"]).stdout)
    assert discovered["gen"]["streams"][0]["primary_key"] == ["id"]


def test_init_scaffold_runs_and_second_run_reads_nothing(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    first = runner.invoke(app, ["run", str(project / "pipeline.yml"), "--json"])
    assert first.exit_code == 0, first.output
    assert {s["name"]: s["rows_loaded"] for s in json.loads(first.stdout)["streams"]} == {
        "orders": 3,
        "events": 2,
    }
    second = runner.invoke(app, ["run", str(project / "pipeline.yml"), "--json"])
    assert [s["rows_read"] for s in json.loads(second.stdout)["streams"]] == [0, 0]
    again = runner.invoke(app, ["init", str(project)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.stderr
