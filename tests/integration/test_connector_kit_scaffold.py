"""`aggregator connectors new` scaffolds a package that installs and passes its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggregator.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()
BIN = Path(sys.executable).parent


def test_scaffolded_connector_installs_and_passes_its_tests(tmp_path: Path) -> None:
    result = runner.invoke(app, ["connectors", "new", "demo_api", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "aggregator-source-demo-api"
    assert (root / "pyproject.toml").read_text().count('"source.demo_api"') == 1
    again = runner.invoke(app, ["connectors", "new", "demo_api", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["connectors", "new", "Bad-Name", "--dir", str(tmp_path)])
    assert bad.exit_code == 2

    site = tmp_path / "site"  # installed beside, not into, the project's environment
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(root),
        ],
        check=True,
        timeout=240,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "9 passed" in tests.stdout
    listed = subprocess.run(
        [str(BIN / "aggregator"), "connectors", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"demo_api"' in listed.stdout
    lint = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "."], cwd=root, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
