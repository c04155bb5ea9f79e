"""The Singer destination with the real target-jsonl, and tap -> target through our engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli.main import app
from tests.integration.test_singer_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.integration
runner = CliRunner()


def _run(pipeline: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["run", str(pipeline), "--json"])
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.stdout)["streams"]}


def _lines(directory: Path, stream: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / f"{stream}.jsonl").read_text().splitlines()]


def test_files_to_target_jsonl_exact_and_incremental(tmp_path: Path, plugins: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text(
        'id,amount,at,note\n1,12.30,2024-01-01T10:00:00+02:00,"a ""quoted"" note"\n'
        "2,0.05,2024-01-02T10:00:00Z,\n3,oops,2024-01-03T10:00:00Z,x\n"
    )
    out = tmp_path / "out"
    spec = {
        "name": "to_singer",
        "sources": [
            {
                "name": "f",
                "type": "files",
                "config": {"streams": [{"name": "orders", "path": str(data)}]},
                "streams": [
                    {
                        "name": "orders",
                        "cursor_field": "id",
                        "write_mode": "append",
                        "columns": {"amount": "decimal(10,2)"},
                    }
                ],
            }
        ],
        "destination": {
            "type": "singer",
            "config": {
                "target": "target-jsonl",
                "config": {"destination_path": str(out), "do_timestamp_file": False},
            },
        },
    }
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    streams = _run(pipeline)
    assert (streams["orders"]["rows_loaded"], streams["orders"]["rows_quarantined"]) == (2, 1)
    rows = _lines(out, "orders")
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["note"] == 'a "quoted" note' and rows[1]["note"] is None
    assert rows[0]["at"] == "2024-01-01T08:00:00.000000Z"
    raw = (out / "orders.jsonl").read_text()
    assert '"amount": 12.3' in raw or '"amount":12.3' in raw
    [bad] = _lines(out, "orders__quarantine")
    assert bad["position"].endswith("orders.csv:4") and "amount" in bad["reason"]
    state = runner.invoke(app, ["state", "show", str(pipeline)])
    assert json.loads(state.stdout)["orders"]["cursor"] == 2  # the last loaded row
    again = _run(pipeline)
    assert again["orders"]["rows_loaded"] == 0


def test_tap_jsonl_to_target_jsonl_through_the_engine(tmp_path: Path, plugins: Path) -> None:
    data = tmp_path / "things.jsonl"
    data.write_text("".join(json.dumps({"id": i, "v": i * 1.5}) + "\n" for i in range(30)))
    out = tmp_path / "out"
    spec = {
        "name": "singer_both",
        "sources": [
            {
                "name": "t",
                "type": "singer",
                "config": {
                    "tap": "tap-jsonl",
                    "config": {"path": str(data), "stream_name": "things"},
                },
                "streams": [
                    {
                        "name": "things",
                        "write_mode": "append",
                        "sync_mode": "incremental",
                        "cursor_field": "_sdc_last_modified",
                    }
                ],
            }
        ],
        "destination": {
            "type": "singer",
            "config": {
                "target": "target-jsonl",
                "config": {"destination_path": str(out), "do_timestamp_file": False},
            },
        },
    }
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    assert _run(pipeline)["things"]["rows_loaded"] == 30
    assert [r["id"] for r in _lines(out, "things")] == list(range(30))
    assert _run(pipeline)["things"]["rows_loaded"] == 0
