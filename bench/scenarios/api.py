"""The REST API under load: ``GET /api/v1/pipelines`` (100 pipelines) at 300 requests/s on
PostgreSQL metadata with 4 uvicorn workers (target: p99 < 50 ms), and login throughput.

The timed command includes the server start and seeding: read the measured fields
(``requests_per_s``, ``p50_ms``, ``p99_ms``, ``login_per_s``, ``loadgen_cpu_cores``,
``server_cpu_ms_per_request``...) that ``bench/tools/api_load.py`` reports (``ToolRun.report``),
not ``seconds``. The load generator is ``oha`` when installed (open loop at a fixed rate,
corrected for coordinated omission), else ``hey`` (throttled workers; the tool corrects its
latencies against the intended schedule).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import BENCH_DIR, Context, Scenario, ToolRun

RATE = 300
PIPELINES = 100
WORKERS = 4
#: hey (Debian package) is the fallback generator; oha is used when installed
#: (``cargo install --locked oha``: a long compile, so not done here).
INSTALL_HEY = ["bash", "-c", "command -v hey >/dev/null || apt-get install -y -q hey >/dev/null"]


def oha_installed() -> bool:
    """Whether the open-loop generator is there (api_load.py picks it the same way)."""
    return bool(shutil.which("oha")) or (Path.home() / ".cargo" / "bin" / "oha").exists()


def results_file(ctx: Context, tool: str) -> str:
    """Where the tool writes what it measured (read by the runner, see the module doc)."""
    return str(ctx.work / f"api_pipelines_list.{tool}.json")


def scenarios(ctx: Context) -> list[Scenario]:
    """Without and with the Redis response cache."""
    seconds = 10 if ctx.quick else 30
    requests = RATE * seconds
    pg = ctx.services["AGGREGATOR_TEST_PG_URL"]
    tools: dict[str, ToolRun] = {}
    for name, redis in (
        ("aggregator-api", None),
        ("aggregator-api-redis", ctx.services.get("AGGREGATOR_TEST_REDIS_URL")),
    ):
        cmd = [
            ctx.project_python,
            str(BENCH_DIR / "tools" / "api_load.py"),
            "--pg-url",
            pg,
            "--work",
            str(ctx.work / "api"),
            "--results",
            results_file(ctx, name),
            "--rate",
            str(RATE),
            "--seconds",
            str(seconds),
            "--login-seconds",
            str(5 if ctx.quick else 10),
            "--workers",
            str(WORKERS),
            "--pipelines",
            str(PIPELINES),
        ]
        if redis:
            cmd += ["--redis-url", redis]
        tools[name] = ToolRun(
            cmd,
            prepare=[INSTALL_HEY, ["rm", "-rf", str(ctx.work / "api"), results_file(ctx, name)]],
            rows=requests,
            note=f"{requests} requests at {RATE}/s; seconds include server start and seeding",
            extra={
                "target_requests_per_s": RATE,
                "workers": WORKERS,
                "pipelines": PIPELINES,
                "cache": "redis" if redis else "none",
                "load_generator": "oha" if oha_installed() else "hey",
            },
            report=Path(results_file(ctx, name)),
        )
    return [Scenario("api_pipelines_list", requests, tools)]
