"""Load test of the REST API: ``GET /api/v1/pipelines`` at a fixed rate, and login throughput.

Steps: recreate a PostgreSQL metadata database, create a user, start ``aggregator api
--workers N``, create 100 pipelines through the API, warm up, then drive the list endpoint
with ``oha`` at a fixed request rate (``-q``, open loop, latency correction for
coordinated omission) and measure p50/p90/p99; then log in as fast as ``oha`` can with a
few connections (argon2 dominates). The measured fields go to ``--results`` (JSON), the
load generator's own CPU use included: a generator short of CPU reports lower rates and
higher latencies than the server causes, so its achieved rate is compared with the target.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

PASSWORD = "Bench-Password-4-Load!"
EMAIL = "bench-editor@example.com"


def oha_binary() -> str | None:
    """``oha`` on PATH or in ~/.cargo/bin (``cargo install --locked oha``), if installed."""
    found = shutil.which("oha") or str(Path.home() / ".cargo" / "bin" / "oha")
    return found if Path(found).exists() else None


def recreate_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the server; its SQLAlchemy (psycopg 3) URL."""
    with psycopg.connect(server_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    return str(url.render_as_string(hide_password=False))


def server_env(a: argparse.Namespace, metadata_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env.update(
        AGGREGATOR_HOME=str(home),
        AGGREGATOR_METADATA_URL=metadata_url,
        AGGREGATOR_SECRET_KEY=secrets.token_urlsafe(48),
        AGGREGATOR_ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),
        # The load comes from one IP and one user: lift the gateway limits for the test.
        AGGREGATOR_RATE_LIMIT_PER_MINUTE="1000000000",
        AGGREGATOR_LOG_LEVEL="warning",
        AGGREGATOR_COOKIE_SECURE="false",
    )
    if a.redis_url:
        env["AGGREGATOR_REDIS_URL"] = a.redis_url
    return env


def create_user(env: dict[str, str]) -> None:
    code = (
        "from aggregator.metadata.store import MetadataStore\n"
        "from aggregator.security import identity\n"
        "from aggregator.settings import load_settings\n"
        "store = MetadataStore(load_settings().metadata_database_url())\n"
        "with store.session() as s:\n"
        f"    identity.create_user(s, {EMAIL!r}, {PASSWORD!r}, 'editor')\n"
        "    s.commit()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def call(base: str, method: str, path: str, body: Any = None, token: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


def wait_ready(base: str, proc: subprocess.Popen[bytes], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"aggregator api exited with {proc.returncode}")
        try:
            if call(base, "GET", "/readyz")["status"] == "ok":
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("aggregator api did not become ready")


def seed(base: str, token: str, count: int, work: Path) -> None:
    for i in range(count):
        spec = {
            "name": f"bench_pipeline_{i:03d}",
            "sources": [
                {
                    "name": "files",
                    "type": "files",
                    "config": {"streams": [{"name": "orders", "path": f"{work}/in/o{i}.csv"}]},
                    "streams": [{"name": "orders", "primary_key": ["id"], "cursor_field": "ts"}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": f"{work}/wh{i}.duckdb"}},
        }
        call(base, "POST", "/api/v1/pipelines", {"spec": spec}, token)
    listed = call(base, "GET", "/api/v1/pipelines?limit=500", token=token)
    if len(listed) != count:
        raise SystemExit(f"expected {count} pipelines, the API lists {len(listed)}")


@dataclass
class Load:
    """What one load run measured: rate, latency percentiles (ms), share of 200s, CPU."""

    requests_per_s: float
    percentiles_ms: dict[str, float]
    ok_ratio: float
    cpu_cores: float

    def get(self, name: str) -> float | None:
        value = self.percentiles_ms.get(name)
        return round(value, 2) if value is not None else None


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}
    pick = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
    return {k: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for k, q in pick.items()}


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    members, changed = {root}, True
    while changed:
        grown = members | {pid for pid, ppid in parents.items() if ppid in members}
        changed, members = grown != members, grown
    return sum(cpu.get(pid, 0.0) for pid in members)


def _children_cpu() -> float:
    """CPU seconds of finished child processes (the load generator runs are children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(cmd: list[str]) -> tuple[bytes, float, float]:
    before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.decode()[-400:]}")
    return proc.stdout, wall, (_children_cpu() - before) / wall


def load_oha(oha: str, args: list[str], rate: int | None) -> Load:
    """oha: open loop at ``rate`` with latency correction (coordinated omission)."""
    fixed = ["-q", str(rate), "--latency-correction"] if rate else []
    out, _, cpu = _measure([oha, "--no-tui", "--output-format", "json", *fixed, *args])
    summary = json.loads(out)
    codes = summary.get("statusCodeDistribution", {})
    total = sum(codes.values()) or 1
    details = summary.get("latencyPercentiles", {})
    return Load(
        round(float(summary["summary"]["requestsPerSec"]), 1),
        {k: float(v) * 1000 for k, v in details.items() if v is not None},
        round(codes.get("200", 0) / total, 4),
        cpu,
    )


def load_hey(args: list[str], seconds: int, concurrency: int, rate: int | None) -> Load:
    """hey (closed loop per worker, throttled to ``rate`` in total); latencies are
    corrected for coordinated omission against the intended schedule (i / rate)."""
    fixed = ["-q", f"{rate / concurrency:.3f}"] if rate else []
    out, _, cpu = _measure(
        ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-o", "csv", *fixed, *args]
    )
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    rows.sort(key=lambda r: float(r["offset"]))
    latencies = []
    for i, r in enumerate(rows):
        took = float(r["response-time"])
        if rate:
            took = max(took, float(r["offset"]) + took - i / rate)
        latencies.append(took * 1000)
    ok = sum(1 for r in rows if r["status-code"] == "200")
    rate_done = round(len(rows) / seconds, 1)
    return Load(rate_done, _percentiles(latencies), round(ok / max(len(rows), 1), 4), cpu)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pg-url", required=True, help="PostgreSQL server (a database is made)")
    p.add_argument("--redis-url", help="turn on the Redis response cache")
    p.add_argument("--results", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--database", default="aggbench_api")
    p.add_argument("--pipelines", type=int, default=100)
    p.add_argument("--rate", type=int, default=300)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--login-seconds", type=int, default=10)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--port", type=int, default=18431)
    p.add_argument("--generator", choices=["auto", "oha", "hey"], default="auto")
    a = p.parse_args()

    a.work.mkdir(parents=True, exist_ok=True)
    metadata_url = recreate_database(a.pg_url, a.database)
    env = server_env(a, metadata_url, a.work / "home")
    create_user(env)
    aggregator = str(Path(sys.executable).parent / "aggregator")
    server_log = (a.work / "server.log").open("wb")
    server = subprocess.Popen(
        [aggregator, "api", "--port", str(a.port), "--workers", str(a.workers)],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{a.port}"
    try:
        wait_ready(base, server)
        token = call(base, "POST", "/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD})[
            "access_token"
        ]
        seed(base, token, a.pipelines, a.work)
        url = f"{base}/api/v1/pipelines"
        auth = ["-H", f"Authorization: Bearer {token}"]
        login_args = ["-m", "POST", "-T", "application/json", "-d",
                      json.dumps({"email": EMAIL, "password": PASSWORD}),
                      f"{base}/api/v1/auth/login"]  # fmt: skip
        oha = None if a.generator == "hey" else oha_binary()
        if a.generator == "oha" and oha is None:
            raise SystemExit("oha not found: run `cargo install --locked oha`")
        if oha:
            load_oha(oha, ["-n", "1000", "-c", "8", *auth, url], None)  # warm-up
        else:
            load_hey([*auth, url], 3, 8, None)  # warm-up
        cpu_before = tree_cpu(server.pid)
        if oha:
            listing = load_oha(oha, ["-z", f"{a.seconds}s", "-c", "32", *auth, url], a.rate)
        else:
            listing = load_hey([*auth, url], a.seconds, 30, a.rate)
        cpu_listing = tree_cpu(server.pid) - cpu_before
        cpu_before = tree_cpu(server.pid)
        if oha:
            login = load_oha(oha, ["-z", f"{a.login_seconds}s", "-c", "8", *login_args], None)
        else:
            login = load_hey(login_args, a.login_seconds, 8, None)
        cpu_login = tree_cpu(server.pid) - cpu_before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    results = {
        "generator": "oha" if oha else "hey",
        "target_requests_per_s": a.rate,
        "requests_per_s": listing.requests_per_s,
        "p50_ms": listing.get("p50"),
        "p90_ms": listing.get("p90"),
        "p99_ms": listing.get("p99"),
        "ok_ratio": listing.ok_ratio,
        "loadgen_cpu_cores": round(listing.cpu_cores, 2),
        "loadgen_rate_ratio": round(listing.requests_per_s / a.rate, 3),
        "login_per_s": login.requests_per_s,
        "login_p50_ms": login.get("p50"),
        "login_p99_ms": login.get("p99"),
        "login_ok_ratio": login.ok_ratio,
        # Server CPU per request: what the API costs, whatever else shares the machine.
        "server_cpu_ms_per_request": round(
            1000 * cpu_listing / max(1.0, listing.requests_per_s * a.seconds), 2
        ),
        "login_server_cpu_ms": round(
            1000 * cpu_login / max(1.0, login.requests_per_s * a.login_seconds), 1
        ),
        "cpu_cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "workers": a.workers,
        "pipelines": a.pipelines,
        "cache": "redis" if a.redis_url else "none",
    }
    a.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
