"""The local API server, shared by the REST tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.rest.server import STATE, Server, State


@pytest.fixture(scope="session")
def _server() -> Iterator[Server]:
    with Server() as server:
        yield server


@pytest.fixture
def api(_server: Server) -> Iterator[str]:
    """Base URL of a freshly reset API."""
    STATE.reset()
    yield _server.url


@pytest.fixture
def api_state() -> State:
    """Counters of the API (hits per path, tokens issued, concurrency seen)."""
    return STATE
