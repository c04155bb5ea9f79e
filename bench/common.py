"""What a benchmark scenario module declares (see bench/README.md)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Context:
    """What the runner prepared: data, interpreters, a scratch directory."""

    pg_url: str  # the benchmark database (pgbench_accounts, wide)
    pg_target_url: str  # a second database for -> PostgreSQL scenarios
    project_python: str  # the project venv (aggregator)
    peers_python: str  # bench/.venv-peers (dlt, connectorx, adbc...)
    work: Path  # scratch directory, emptied by each tool's prepare step
    quick: bool
    rows: dict[str, int] = field(default_factory=dict)  # table -> row count
    services: dict[str, str] = field(default_factory=dict)  # scripts/services.sh env lines


@dataclass
class ToolRun:
    """One tool in one scenario: the command timed, and what runs before it (untimed)."""

    cmd: list[str]
    prepare: list[list[str]] = field(default_factory=list)
    #: rows moved, when fewer than the scenario's: a tool too slow for the whole table reads
    #: a subset (a view of the first N keys); run.py records ``subset_of`` and says so
    rows: int | None = None
    note: str = ""
    #: other units moved, reported as ``<unit>_per_s`` (for example ``{"pages": 2000}``)
    units: dict[str, int] = field(default_factory=dict)
    #: fixed fields copied into the result entry (for example ``{"concurrency": 8}``)
    extra: dict[str, Any] = field(default_factory=dict)
    #: a JSON object the tool writes on each run (lag, CPU seconds...): the median of each
    #: numeric field over the runs goes into the result entry; the file is removed first
    report: Path | None = None


@dataclass
class Scenario:
    """A source -> destination move measured for several tools on the same data."""

    name: str
    rows: int
    tools: dict[str, ToolRun]


BENCH_DIR = Path(__file__).resolve().parent
#: what survives a fresh clone: virtualenvs of peers, keyed by a hash of their recipe
CACHE_DIR = Path(
    os.environ.get("AGGREGATOR_BENCH_CACHE", Path.home() / ".cache" / "aggregator" / "bench")
)


def recipe_key(*parts: str | Path) -> str:
    """A short hash of a recipe: texts, and files by their content."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def cached_dir(name: str, *recipe: str | Path) -> Path:
    """``CACHE_DIR/<name>-<hash of recipe>``: build into it once, reuse across clones."""
    return CACHE_DIR / f"{name}-{recipe_key(*recipe)}"
