"""Our built-in sources pass the standard suite of ``aggregator.testing``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.connectors.files import FilesSource
from aggregator.connectors.rest import RestSource
from aggregator.connectors.sqlite import SQLiteSource
from aggregator.testing import SourceTestSuite
from tests.integration.rest.server import Server

pytestmark = pytest.mark.integration


class TestFilesSource(SourceTestSuite):
    source_class = FilesSource
    reports_stream_info = True
    incremental_streams = {"orders": "updated_at"}
    bad_field = "delimiter"

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "orders.csv").write_text(
            "id,amount,updated_at\n1,1.50,2024-01-01T00:00:00Z\n2,2.50,2024-01-02T00:00:00Z\n"
        )
        (tmp_path / "events.jsonl").write_text('{"e": 1}\n{"e": 2}\n')
        return {
            "streams": [
                {"name": "orders", "path": str(tmp_path / "orders.csv"), "primary_key": ["id"]},
                {"name": "events", "path": str(tmp_path / "events.jsonl")},
            ]
        }

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"streams": [{**config["streams"][0], "delimiter": ";;"}]}

    @pytest.fixture
    def failing_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"streams": [{"name": "x", "path": str(tmp_path / "missing*.csv")}]}


class TestSQLiteSource(SourceTestSuite):
    source_class = SQLiteSource
    reports_stream_info = True
    incremental_streams = {"orders": "id"}

    @pytest.fixture
    def config(self, tmp_path: Path) -> dict[str, Any]:
        path = tmp_path / "db.sqlite"
        con = sqlite3.connect(path)
        con.executescript(
            "create table orders (id integer primary key, amount decimal(10,2));"
            "insert into orders values (1, '1.50'), (2, '2.25');"
        )
        con.commit()
        con.close()
        return {"path": str(path)}

    @pytest.fixture
    def failing_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "missing.sqlite")}


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with Server() as server:
        yield server.url


class TestRestSource(SourceTestSuite):
    source_class = RestSource
    reports_stream_info = True
    incremental_streams = {"events": "updated_at"}
    bad_field = "base_url"

    @pytest.fixture
    def config(self, api_url: str) -> dict[str, Any]:
        return {
            "base_url": api_url,
            "pagination": {"type": "page_number"},
            "streams": [
                {"name": "users", "path": "/users", "records_path": "data", "primary_key": ["id"]},
                {
                    "name": "orders",
                    "path": "/users/{id}/orders",
                    "parent": "users",
                    "pagination": {"type": "none"},
                },
                {
                    "name": "events",
                    "path": "/events",
                    "records_path": "data",
                    "incremental": {"cursor_field": "updated_at", "param": "since"},
                },
            ],
        }

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "base_url": "ftp://nowhere"}

    @pytest.fixture
    def failing_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "base_url": config["base_url"] + "/nothing-here"}
