"""What a CLI process loads: heavy libraries only for the commands and pipelines that use them.

Start-up *time* is measured by the benchmarks, never asserted here. These tests pin which
modules a fresh process has imported, so that an import added at the top of a module cannot
silently bring SQLAlchemy back into ``aggregator --help`` or sqlglot into every run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Libraries that importing the CLI (and ``--help``) must not load: each costs tens to
#: hundreds of milliseconds and only some commands use it.
HEAVY = frozenset(
    {
        "alembic",
        "argon2",
        "confluent_kafka",
        "cryptography",
        "duckdb",
        "fastapi",
        "fsspec",
        "httpx",
        "jwt",
        "numpy",
        "opentelemetry",
        "pandas",
        "psycopg",
        "pyarrow",
        "pydantic",
        "pydantic_settings",
        "pymysql",
        "redis",
        "sqlalchemy",
        "sqlglot",
        "starlette",
        "structlog",
        "uvicorn",
        "yaml",
    }
)
#: Our own packages that pull those in.
HEAVY_OURS = frozenset(
    {
        "aggregator.api",
        "aggregator.connectors.registry",
        "aggregator.engines",
        "aggregator.metadata",
        "aggregator.pipeline",
        "aggregator.quality",
        "aggregator.security",
        "aggregator.settings",
        "aggregator.transform",
    }
)
#: What a run of a pipeline without SQL expressions, with a files destination, on an
#: up-to-date metadata store must not load (the API, identity, the SQL parser, DuckDB, Alembic).
NOT_IN_A_PLAIN_RUN = frozenset(
    {
        "alembic",
        "argon2",
        "duckdb",
        "fastapi",
        "httpx",
        "jwt",
        "psycopg",
        "pymysql",
        "sqlglot",
        "uvicorn",
        "aggregator.api",
        "aggregator.metadata.control_models",
        "aggregator.security.identity",
        "aggregator.transform.expr",
        "aggregator.transform.processor",
    }
)

_CLI = """
import atexit, json, sys

report = sys.argv.pop(1)

def _report() -> None:
    with open(report, "w") as f:
        json.dump(sorted(sys.modules), f)

atexit.register(_report)
from aggregator.cli.main import app

if len(sys.argv) > 1:
    app()
"""


def _loaded(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run the CLI with ``args`` in a fresh interpreter (only import it when no args);
    the names of the modules loaded when it exited, and the process."""
    report = tmp_path / "modules.json"
    report.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _CLI, str(report), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = set(json.loads(report.read_text()))
    return modules, done


def _present(modules: set[str], names: frozenset[str]) -> set[str]:
    """Which of ``names`` (packages or modules) are loaded, counting submodules."""
    return {n for n in names if any(m == n or m.startswith(n + ".") for m in modules)}


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    modules, done = _loaded(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "typer" in modules and "aggregator.cli.main" in modules
    assert _present(modules, HEAVY | HEAVY_OURS) == set()


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    modules, done = _loaded(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "check", "runs", "api", "profile", "plugins", "secrets"):
        assert f" {command} " in done.stdout
    assert _present(modules, HEAVY | HEAVY_OURS) == set()


def test_version_loads_settings_but_no_data_library(tmp_path: Path) -> None:
    modules, done = _loaded(tmp_path, "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == __import__("aggregator").__version__
    assert "aggregator.settings" in modules  # the callback validates the settings
    data = frozenset({"pyarrow", "numpy", "sqlalchemy", "duckdb", "sqlglot", "fastapi"})
    assert _present(modules, data) == set()


def _pipeline(tmp_path: Path, stream_extra: str = "") -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"{i},{i * 1.5},2024-01-0{i % 9 + 1} 00:00:00\n" for i in range(10))
    (data / "orders.csv").write_text("order_id,amount,updated_at\n" + rows)
    path = tmp_path / "pipeline.yml"
    path.write_text(
        "name: tiny\n"
        "sources:\n"
        "  - name: files\n"
        "    type: files\n"
        "    config:\n"
        "      streams:\n"
        '        - {name: orders, path: "${PIPELINE_DIR}/data/orders.csv"}\n'
        "    streams:\n"
        f"      - {{name: orders{stream_extra}}}\n"
        "destination:\n"
        "  type: files\n"
        '  config: {path: "${PIPELINE_DIR}/out", format: parquet}\n'
    )
    return path


def test_a_plain_run_loads_only_what_the_pipeline_uses(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    first, done = _loaded(tmp_path, "run", "--json", str(pipeline))
    assert done.returncode == 0, done.stderr
    assert "alembic" in first  # a new metadata store is migrated
    again, done = _loaded(tmp_path, "run", "--json", str(pipeline))
    assert done.returncode == 0, done.stderr
    (stream,) = json.loads(done.stdout)["streams"]
    assert (stream["name"], stream["status"], stream["rows_loaded"]) == ("orders", "succeeded", 10)
    assert {"pyarrow", "sqlalchemy", "aggregator.connectors.files.source"} <= again
    assert _present(again, NOT_IN_A_PLAIN_RUN) == set()


def test_sql_expressions_are_still_checked_when_the_spec_loads(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, ", transforms: [{step: filter, where: 'amount >'}]")
    modules, done = _loaded(tmp_path, "run", str(pipeline))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pipeline.yml:9: sources.0.streams.0.transforms.0.where:" in done.stderr
    assert "sqlglot" in modules
