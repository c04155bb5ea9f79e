"""The Airbyte source with the real airbyte-source-faker from PyPI (installed once, cached)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from aggregator.connectors.airbyte import AirbyteSource
from aggregator.core.types import TIMESTAMPTZ
from aggregator.plugins import manager
from aggregator.testing import SourceTestSuite, read_stream
from tests.integration.test_singer_fixtures import CACHE

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FAKER = {"count": 20, "seed": 1, "records_per_slice": 10, "always_updated": False}


@pytest.fixture(scope="session")
def _faker_installed() -> Path:
    old = os.environ.get("AGGREGATOR_PLUGINS_DIR")
    os.environ["AGGREGATOR_PLUGINS_DIR"] = str(CACHE)
    try:
        if "source-faker" not in {p.name for p in manager.installed()}:
            manager.add("source-faker", "airbyte-source-faker")
    finally:
        if old is None:
            del os.environ["AGGREGATOR_PLUGINS_DIR"]
        else:
            os.environ["AGGREGATOR_PLUGINS_DIR"] = old
    return CACHE


@pytest.fixture
def faker(_faker_installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGGREGATOR_PLUGINS_DIR", str(_faker_installed))
    yield _faker_installed


_SOURCES: dict[str, AirbyteSource] = {}


def _source() -> AirbyteSource:
    """One instance for the module: its discovered catalog is reused (faker starts slowly)."""
    if "faker" not in _SOURCES:
        src = AirbyteSource.from_config({"connector": "source-faker", "config": FAKER})
        assert isinstance(src, AirbyteSource)
        _SOURCES["faker"] = src
    return _SOURCES["faker"]


def test_faker_discover_types_and_keys(faker: Path) -> None:
    src = _source()
    assert "properties" in src.connector_spec()
    users = src.discover().get("users")
    assert users is not None and users.primary_key == ("id",)
    assert users.cursor_candidates == ("updated_at",)
    assert users.schema.field("created_at").type == TIMESTAMPTZ
    assert users.schema.field("id").type == pa.int64()


def test_faker_read_state_round_trip(faker: Path) -> None:
    src = _source()
    first = read_stream(src, "users", cursor_field="updated_at")
    table = first.table
    assert first.rows == 20 and first.quarantined == []
    assert any("estimated 20 rows" in m for _, m in first.logs)
    assert table.column("id").to_pylist() == list(range(1, 21))
    assert table.schema.field("updated_at").type == TIMESTAMPTZ
    assert pa.types.is_struct(table.schema.field("address").type)
    final = first.final_state
    assert final is not None and final["airbyte"]["stream"]["stream_descriptor"]["name"] == "users"
    again = read_stream(src, "users", final, cursor_field="updated_at")
    assert again.rows == 0


class TestAirbyteSourceSuite(SourceTestSuite):
    """The standard suite (the state round trip of `users` is tested above)."""

    source_class = AirbyteSource
    streams: ClassVar[list[str] | None] = ["products"]

    @pytest.fixture
    def config(self, faker: Path) -> dict[str, Any]:
        return {"connector": "source-faker", "config": FAKER}

    @pytest.fixture
    def source(self, config: dict[str, Any]) -> AirbyteSource:
        return _source()

    @pytest.fixture
    def failing_config(self, faker: Path) -> dict[str, Any]:
        return {"connector": "source-not-installed", "config": {}}
