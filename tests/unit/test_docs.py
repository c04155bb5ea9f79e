"""The pipeline reference documents every key of the spec and of each built-in connector."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from aggregator.connectors import registry
from aggregator.pipeline.spec import (
    DestinationSpec,
    EngineSpec,
    PipelineSpec,
    SourceSpec,
    StreamSpec,
)

pytestmark = pytest.mark.unit
DOC = (Path(__file__).parents[2] / "docs" / "pipelines.md").read_text()
DOCUMENTED = set(re.findall(r"`(?:streams\[\]\.)?([A-Za-z_]+)`", DOC))


def _keys(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


@pytest.mark.parametrize(
    "model", [PipelineSpec, SourceSpec, StreamSpec, DestinationSpec, EngineSpec]
)
def test_spec_keys_are_documented(model: type[BaseModel]) -> None:
    assert _keys(model) - DOCUMENTED == set()


BUILTINS = ["files", "sqlite", "duckdb"]


@pytest.mark.parametrize(
    "info", [c for c in registry.all_connectors() if c.package == "aggregator"], ids=str
)
def test_builtin_connector_keys_are_documented(info: registry.ConnectorInfo) -> None:
    keys = _keys(info.cls.config_model)
    for field in info.cls.config_model.model_fields.values():
        nested = getattr(field.annotation, "__args__", ())
        for arg in nested:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _keys(arg)
    assert keys - DOCUMENTED == set()
    assert f"### {info.kind.capitalize()} `{info.name}`" in DOC
