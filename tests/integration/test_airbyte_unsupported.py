"""Docker-only Airbyte connectors are refused with a message saying what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.connectors.airbyte import AirbyteSource
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.plugins import manager

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "image",
    ["airbyte/source-postgres", "airbyte/source-faker:6.2.1", "docker.io/airbyte/source-x:1"],
)
def test_a_docker_image_as_connector_is_a_config_error(image: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AirbyteSource.from_config({"connector": image})
    message = caught.value.message
    assert "config.connector" in message
    assert "Docker-only Airbyte connectors are not supported" in message
    assert "--pip-url airbyte-source-" in message


@pytest.mark.slow
def test_a_connector_pip_cannot_install_mentions_docker_only_releases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_PLUGINS_DIR", str(tmp_path / "plugins"))
    not_a_project = tmp_path / "source-imaginary"
    not_a_project.mkdir()  # no pyproject.toml: pip fails locally, without an index
    with pytest.raises(ConnectorError) as caught:
        manager.add("source-imaginary", str(not_a_project))
    message = caught.value.message
    assert "pip could not install" in message and "source-imaginary" in message
    assert "published only as Docker images are not supported" in message
    assert not (tmp_path / "plugins" / "source-imaginary").exists()
