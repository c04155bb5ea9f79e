"""The tutorial's source in docs/connectors.md is under 50 lines and passes the suite."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aggregator.connectors.sdk import Source
from aggregator.testing import SourceTestSuite

pytestmark = pytest.mark.integration
DOC = (Path(__file__).parents[2] / "docs" / "connectors.md").read_text()
CODE = re.search(r"<!-- tutorial-source -->\n```python\n(.*?)```", DOC, re.S)
assert CODE is not None
MODULE = types.ModuleType("tutorial_readings")
exec(compile(CODE.group(1), "docs/connectors.md", "exec"), MODULE.__dict__)
READINGS: type[Source[Any]] = MODULE.ReadingsSource


def test_tutorial_source_is_under_50_lines() -> None:
    assert CODE is not None and len(CODE.group(1).splitlines()) < 50


class TestTutorialSource(SourceTestSuite):
    source_class = READINGS
    incremental_streams: ClassVar[dict[str, str]] = {"readings": "id"}
    bad_field = "path"

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        path = tmp_path / "r.jsonl"
        path.write_text('{"id": 1, "c": 20.5}\n{"id": 2, "c": 21.0}\n')
        return {"path": str(path)}

    @pytest.fixture
    def bad_config(self) -> dict[str, Any]:
        return {"path": 42}

    @pytest.fixture
    def failing_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "missing.jsonl")}
