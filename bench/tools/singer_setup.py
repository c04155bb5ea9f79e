"""Idempotent set-up of the ``singer_jsonl_to_duckdb`` benchmark (untimed prepare step).

- ``venv-meltano-<hash>`` in the bench cache (``common.cached_dir``, reused across clones):
  Meltano in its own virtualenv, and a Meltano project in its ``project`` folder with
  ``tap-jsonl`` and ``target-duckdb`` installed from PyPI (custom plugin definitions: no
  Meltano Hub access needed);
- ``singer-plugins-<hash>`` in the bench cache: the same ``tap-jsonl`` installed for our
  Singer adapter (``aggregator plugins add``);
- ``bench/work/singer_wide_<rows>.jsonl``: the data both read.

Each step leaves a stamp and is skipped when its stamp exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from common import cached_dir  # noqa: E402  (bench/ is not a package)

TAP = "tap-jsonl==0.3.1"
TARGET = "target-duckdb==0.8.0"
MELTANO = "meltano==4.4.1"
MELTANO_VENV = cached_dir("venv-meltano", MELTANO, TAP, TARGET, sys.version)
PROJECT = MELTANO_VENV / "project"
PLUGINS = cached_dir("singer-plugins", TAP, sys.version)


def data_file(rows: int) -> Path:
    """Where the JSON Lines data of ``rows`` rows is."""
    return BENCH / "work" / f"singer_wide_{rows}.jsonl"


def meltano_env() -> dict[str, str]:
    """Environment for meltano commands: no telemetry, project at PROJECT."""
    return {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DISABLE_TRACKING": "true",
        "MELTANO_PROJECT_ROOT": str(PROJECT),
    }


def _run(cmd: list[str], **kw: object) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")


def ensure_meltano(rows: int) -> None:
    stamp = MELTANO_VENV / ".installed"
    if not stamp.exists():
        MELTANO_VENV.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(MELTANO_VENV)])
        _run([str(MELTANO_VENV / "bin" / "python"), "-m", "pip", "install", "-q", MELTANO])
        stamp.write_text(MELTANO)
    PROJECT.mkdir(parents=True, exist_ok=True)
    (PROJECT / "meltano.yml").write_text(
        json.dumps(
            {
                "version": 1,
                "default_environment": "bench",
                "project_id": "aggregator-bench",
                "send_anonymous_usage_stats": False,
                "environments": [{"name": "bench"}],
                "plugins": {
                    "extractors": [
                        {
                            "name": "tap-jsonl",
                            "namespace": "tap_jsonl",
                            "pip_url": TAP,
                            "executable": "tap-jsonl",
                            "config": {"path": str(data_file(rows)), "stream_name": "wide"},
                        }
                    ],
                    "loaders": [
                        {
                            "name": "target-duckdb",
                            "namespace": "target_duckdb",
                            "pip_url": TARGET,
                            "executable": "target-duckdb",
                            "config": {
                                "filepath": str(BENCH / "work" / "meltano.duckdb"),
                                "default_target_schema": "main",
                                # the tap declares no key (the same tap config as ours):
                                # plain inserts, no merge
                                "primary_key_required": False,
                            },
                        }
                    ],
                },
            },
            indent=2,
        )
    )
    stamp = PROJECT / ".plugins-installed"
    if not stamp.exists():
        _run([str(MELTANO_VENV / "bin" / "meltano"), "install"], cwd=PROJECT, env=meltano_env())
        stamp.write_text(f"{TAP} {TARGET}")


def ensure_plugin(project_python: str) -> None:
    if (PLUGINS / "tap-jsonl" / "plugin.json").exists():
        return
    aggregator = str(Path(project_python).parent / "aggregator")
    env = {**os.environ, "AGGREGATOR_PLUGINS_DIR": str(PLUGINS)}
    _run([aggregator, "plugins", "add", "tap-jsonl", "--pip-url", TAP], env=env)


def ensure_data(rows: int) -> None:
    path = data_file(rows)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for i in range(rows):
            record = {
                "id": i,
                "customer": f"customer {i % 5000}",
                "email": f"user{i}@example.com",
                "amount": round(i * 0.01, 2),
                "qty": i % 17,
                "city": ("Lyon", "Paris", "Berlin", "Madrid")[i % 4],
                "country": ("FR", "FR", "DE", "ES")[i % 4],
                "ordered_at": f"2024-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
                "active": i % 2 == 0,
                "score": i % 1000 / 7,
                "note": "x" * (i % 40),
                "version": i % 3,
            }
            out.write(json.dumps(record) + "\n")
    tmp.replace(path)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--project-python", required=True)
    a = p.parse_args()
    ensure_data(a.rows)
    ensure_plugin(a.project_python)
    ensure_meltano(a.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
