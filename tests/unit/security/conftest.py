"""The API fixture of tests/unit/api, for the security tests that go through the API."""

from tests.unit.api.conftest import api  # noqa: F401 - re-exported fixture
