"""A REST pipeline end to end through the CLI into DuckDB: load, quarantine, incremental."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from aggregator.cli.main import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def _pipeline(tmp: Path, api: str) -> Path:
    spec: dict[str, Any] = {
        "name": "api",
        "sources": [
            {
                "name": "shop",
                "type": "rest",
                "config": {
                    "base_url": api,
                    "pagination": {"type": "page_number"},
                    "streams": [
                        {
                            "name": "events",
                            "path": "/events",
                            "records_path": "data",
                            "incremental": {"cursor_field": "updated_at", "param": "since"},
                        },
                        {
                            "name": "mixed",
                            "path": "/mixed",
                            "records_path": "data",
                            "pagination": {"type": "none"},
                        },
                    ],
                },
                "streams": [
                    {
                        "name": "events",
                        "sync_mode": "incremental",
                        "cursor_field": "updated_at",
                        "primary_key": ["id"],
                        "write_mode": "merge",
                    },
                    {"name": "mixed", "write_mode": "replace"},
                ],
            }
        ],
        "destination": {"type": "duckdb", "config": {"path": str(tmp / "wh.duckdb")}},
    }
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_rest_pipeline_into_duckdb(tmp_path: Path, api: str) -> None:
    pipeline = _pipeline(tmp_path, api)
    result = runner.invoke(app, ["run", str(pipeline), "--json"])
    assert result.exit_code == 0, result.output
    streams = {s["name"]: s for s in json.loads(result.stdout)["streams"]}
    assert (streams["events"]["rows_loaded"], streams["events"]["rows_quarantined"]) == (20, 0)
    assert (streams["mixed"]["rows_read"], streams["mixed"]["rows_loaded"]) == (4, 2)
    assert streams["mixed"]["rows_quarantined"] == 2
    again = json.loads(runner.invoke(app, ["run", str(pipeline), "--json"]).stdout)
    events = next(s for s in again["streams"] if s["name"] == "events")
    assert events["rows_loaded"] == 0
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*), max(updated_at) from events").fetchone()[0] == 20
        positions = con.execute(
            "select distinct position from mixed__quarantine order by 1"
        ).fetchall()
    finally:
        con.close()
    assert [p for (p,) in positions] == ["mixed:page 1 item 2", "mixed:page 1 item 3"]
