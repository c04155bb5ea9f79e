"""`transform preview`, `profile`, `check-data`, `runs quality` and `runs show` through the
real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli.main import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def _pipeline(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text("id,Name,score\n1, ann ,10\n2,bob,x\n3,cy,30\n3,cy,30\n")
    stream = {
        "name": "people",
        "transforms": [
            {"step": "trim", "columns": ["Name"]},
            {"step": "cast", "columns": {"score": "int64"}},
        ],
        "checks": [{"check": "range", "column": "score", "max": 20, "severity": "warn"}],
        "profile": True,
    }
    spec = {
        "name": "cli_quality",
        "sources": [
            {
                "name": "f",
                "type": "files",
                "config": {"streams": [{"name": "people", "path": str(tmp_path / "people.csv")}]},
                "streams": [stream],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}},
    }
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_preview_shows_before_after_and_quarantine(tmp_path: Path) -> None:
    result = runner.invoke(app, ["transform", "preview", str(_pipeline(tmp_path)), "-s", "people"])
    assert result.exit_code == 0, result.output
    assert "people: before" in result.output and "people: after 2 step(s)" in result.output
    assert "quarantined 1 of 4 rows" in result.output
    assert "row 2: stream 'people': transforms[1] (cast): column 'score': cannot cast 'x'" in (
        result.output.replace("\n", "")
    )


def test_run_then_profile_runs_quality_and_check_data(tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    run = runner.invoke(app, ["run", str(path), "--json"])
    assert run.exit_code == 0, run.output
    run_id = json.loads(run.stdout)["run_id"]
    profile = runner.invoke(app, ["profile", str(path), "-s", "people", "--json"])
    assert profile.exit_code == 0, profile.output
    columns = json.loads(profile.stdout)
    assert columns["score"]["count"] == 3 and columns["score"]["max"] == 30
    assert columns["Name"]["top"][0] == ["cy", 2]
    live = runner.invoke(app, ["profile", str(path), "-s", "people", "--live", "--json"])
    assert json.loads(live.stdout)["id"]["distinct"] == 2
    quality = runner.invoke(app, ["runs", "quality", run_id[:8], "--json"])
    assert quality.exit_code == 0, quality.output
    [result] = json.loads(quality.stdout)
    assert (result["status"], result["failed"], result["samples"]) == ("warned", 2, [30, 30])
    assert result["detail"] == "score outside [None, 20]"
    shown = runner.invoke(app, ["runs", "show", run_id[:8]], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "data quality" in shown.stdout and "people: profile" in shown.stdout
    assert "warned" in shown.stdout and "30 (2), 10 (1)" in shown.stdout
    shown_json = json.loads(runner.invoke(app, ["runs", "show", run_id[:8], "--json"]).stdout)
    assert [r["status"] for r in shown_json["quality"]] == ["warned"]
    people = shown_json["profiles"]["people"]
    assert (people["rows_in"], people["rows_out"], people["rows_rejected"]) == (4, 3, 1)
    assert people["columns"]["score"]["max"] == 30
    checked = runner.invoke(app, ["check-data", str(path), "-s", "people"])
    assert checked.exit_code == 1, checked.output
    assert "checks[0] (range)" in checked.output


def test_check_data_without_warehouse_is_config_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check-data", str(_pipeline(tmp_path)), "-s", "people"])
    assert result.exit_code == 2
    assert "no warehouse at" in result.output
