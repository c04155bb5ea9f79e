"""Scaffold a connector package: pyproject (entry point), a working source, standard tests."""

from __future__ import annotations

import re
from pathlib import Path

from aggregator.core.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "aggregator-source-{dash}"
version = "0.1.0"
description = "The {name} source for aggregator."
requires-python = ">=3.11"
dependencies = ["aggregator"]

[project.entry-points."aggregator.connectors"]
"source.{name}" = "{module}:{cls}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.ruff]
line-length = 100

[tool.ruff.lint.isort]
known-first-party = ["{module}", "aggregator"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

SOURCE = '''\
"""The `{name}` source: replace the generated rows with calls to your system."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.messages import Checkpoint, Message, Records

SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string())])


class {cls}Config(ConnectorConfig):
    """Configuration (its JSON Schema drives validation and forms)."""

    count: int = Field(100, ge=0, description="Rows offered by the `numbers` stream.")


class {cls}(Source[{cls}Config]):
    """Offers one stream, `numbers`, incremental on `id`."""

    name: ClassVar[str] = "{name}"
    config_model = {cls}Config

    def check(self) -> CheckResult:
        if self.config.count == 0:
            return CheckResult(False, "count is 0: nothing to read")
        return CheckResult(True, "ok")

    def discover(self) -> Catalog:
        modes = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
        return Catalog((Stream("numbers", SCHEMA, ("id",), ("id",), modes),))

    def read(
        self, stream: ConfiguredStream, state: dict[str, Any] | None
    ) -> Iterator[Message]:
        after = (state or {{}}).get("cursor", 0) if stream.cursor_field else 0
        for start in range(after + 1, self.config.count + 1, 1000):
            ids = pa.array(range(start, min(start + 1000, self.config.count + 1)), pa.int64())
            labels = pc.binary_join_element_wise("n", ids.cast(pa.string()), "")
            yield Records(pa.RecordBatch.from_arrays([ids, labels], schema=SCHEMA))
            yield Checkpoint({{"cursor": ids[-1].as_py()}})
        yield Checkpoint({{"cursor": max(after, self.config.count)}})
'''

TESTS = '''\
"""The standard connector suite, plus what is special about this source."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from aggregator.connectors import registry
from aggregator.testing import SourceTestSuite, read_stream
from {module} import {cls}


class Test{cls}(SourceTestSuite):
    source_class = {cls}
    incremental_streams: ClassVar[dict[str, str]] = {{"numbers": "id"}}
    bad_field = "count"

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {{"count": 2500}}

    @pytest.fixture
    def bad_config(self) -> dict[str, Any]:
        return {{"count": -1}}

    @pytest.fixture
    def failing_config(self) -> dict[str, Any]:
        return {{"count": 0}}


def test_registered_through_the_entry_point() -> None:
    assert registry.source_class("{name}") is {cls}


def test_rows() -> None:
    result = read_stream({cls}.from_config({{"count": 3}}), "numbers")  # type: ignore[arg-type]
    assert result.table.to_pydict() == {{"id": [1, 2, 3], "label": ["n1", "n2", "n3"]}}
'''

README = """\
# aggregator-source-{dash}

The `{name}` source for aggregator.

```bash
pip install -e .           # registers the `{name}` source (entry point)
pytest                     # the standard connector suite (aggregator.testing)
aggregator connectors list # shows it
```
"""


def scaffold(name: str, parent: Path) -> Path:
    """Create ``aggregator-source-NAME`` under ``parent``; returns its directory."""
    if not _NAME.match(name):
        raise ConfigError(f"connector name {name!r}: use lowercase letters, digits and _")
    dash = name.replace("_", "-")
    module = f"aggregator_source_{name}"
    cls = "".join(part.capitalize() for part in name.split("_")) + "Source"
    root = parent / f"aggregator-source-{dash}"
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or directory")
    values = {"name": name, "dash": dash, "module": module, "cls": cls}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{module}/__init__.py": f'"""The {name} source."""\n\nfrom {module}.source import'
        f' {cls}\n\n__all__ = ["{cls}"]\n',
        f"src/{module}/source.py": SOURCE,
        "tests/test_source.py": TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
