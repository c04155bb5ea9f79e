"""Connection URLs of the real services started by ``scripts/services.sh`` (``make services``).

A missing service is a test failure, never a skip: ``make test`` starts them all.
"""

from __future__ import annotations

import os

import pytest


def service_url(name: str) -> str:
    """The URL in ``AGGREGATOR_TEST_<NAME>_URL``; fails the test when it is not set."""
    variable = f"AGGREGATOR_TEST_{name.upper()}_URL"
    url = os.environ.get(variable)
    if not url:
        pytest.fail(f"{variable} is not set: run the tests with `make test` (it starts {name})")
    return url
