"""``aggregator connectors list --json`` lists the API/ecosystem kinds of issue #6."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aggregator.cli.main import app

pytestmark = pytest.mark.integration


def test_connectors_list_json_includes_rest_webhook_singer_airbyte() -> None:
    result = CliRunner().invoke(app, ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {(c["kind"], c["name"]): c for c in json.loads(result.stdout)}
    for kind, name in [
        ("source", "rest"),
        ("source", "webhook"),
        ("source", "singer"),
        ("destination", "singer"),
        ("source", "airbyte"),
    ]:
        assert (kind, name) in listed, (kind, name)
        assert listed[(kind, name)]["package"] == "aggregator"
        assert listed[(kind, name)]["description"]
