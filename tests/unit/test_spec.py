"""Pipeline spec loading: located errors, typos, interpolation, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.core.catalog import SchemaPolicy, SyncMode, WriteMode
from aggregator.core.errors import SpecError
from aggregator.pipeline.spec import load_pipeline

pytestmark = pytest.mark.unit

GOOD = """\
name: demo
sources:
  - name: gen
    type: test_sequence
    config:
      rows: ${ROWS:-10}
    streams:
      - name: numbers
        primary_key: [id]
        cursor_field: id
      - name: other
destination:
  type: duckdb
  config:
    path: ${PIPELINE_DIR}/wh.duckdb
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    return path


def test_defaults_and_interpolation(tmp_path: Path) -> None:
    spec = load_pipeline(_write(tmp_path, GOOD))
    assert spec.sources[0].config == {"rows": "10"}
    assert spec.destination.config["path"] == f"{tmp_path}/wh.duckdb"
    numbers, other = spec.configured_streams(spec.sources[0], ["numbers", "other"])
    assert (numbers.sync_mode, numbers.write_mode) == (SyncMode.INCREMENTAL, WriteMode.MERGE)
    assert (other.sync_mode, other.write_mode) == (SyncMode.FULL_REFRESH, WriteMode.REPLACE)
    assert numbers.schema_policy is SchemaPolicy.EVOLVE


def test_typo_in_a_key_names_file_line_path_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("        cursor_field: id", "        cursor_feild: id")
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, text))
    assert info.value.problems == [
        f"{tmp_path}/pipeline.yml:10: sources.0.streams.0.cursor_feild: "
        "unknown key 'cursor_feild'; did you mean 'cursor_field'?"
    ]


def test_wrong_enum_value_names_expected_values(tmp_path: Path) -> None:
    text = GOOD.replace("        cursor_field: id", "        write_mode: upsert")
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path}/pipeline.yml:10: sources.0.streams.0.write_mode: ")
    assert "'append', 'replace' or 'merge'" in problem


def test_connector_config_errors_are_located(tmp_path: Path) -> None:
    text = GOOD.replace("      rows: ${ROWS:-10}", "      rows: many")
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path}/pipeline.yml:6: sources.0.config.rows: ")
    assert "integer" in problem


def test_unknown_connector_lists_installed(tmp_path: Path) -> None:
    text = GOOD.replace("type: duckdb", "type: duckbd")
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path}/pipeline.yml:13: destination.type: ")
    assert "unknown destination connector 'duckbd'" in problem and "duckdb" in problem


def test_missing_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    text = GOOD.replace("${ROWS:-10}", "${DB_PASSWORD}")
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, text))
    assert info.value.problems == [
        f"{tmp_path}/pipeline.yml:6: sources.0.config.rows: environment variable DB_PASSWORD "
        "is not set (use ${DB_PASSWORD:-default} for a default)"
    ]


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_pipeline(_write(tmp_path, "name: x\nsources: [\n"))
    assert info.value.problems[0].startswith(f"{tmp_path}/pipeline.yml:3: YAML syntax")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_pipeline(tmp_path / "nope.yml")


def test_merge_requires_primary_key_and_types_must_parse(tmp_path: Path) -> None:
    text = GOOD.replace("      - name: other", "      - name: other\n        write_mode: merge")
    with pytest.raises(SpecError, match="merge needs primary_key"):
        load_pipeline(_write(tmp_path, text))
    text = GOOD.replace("      - name: other", "      - name: other\n        columns: {a: money}")
    with pytest.raises(SpecError, match="unknown type 'money'"):
        load_pipeline(_write(tmp_path, text))


def test_duplicate_tables_are_rejected(tmp_path: Path) -> None:
    text = GOOD.replace("      - name: other", "      - name: other\n        table: numbers")
    with pytest.raises(SpecError, match="table 'numbers' is written by"):
        load_pipeline(_write(tmp_path, text))
