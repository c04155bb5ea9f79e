"""`make bench`: aggregator against peer tools on the same data, side by side.

Steps: start PostgreSQL (scripts/services.sh), build the data once (pgbench scale 50 and the
2M-row ``wide`` table; ``--quick``: scale 2 and 80k rows; rebuilt when bench/data.sql
changes), install the peers once into ``~/.cache/aggregator/bench/venv-peers-<hash of
requirements-peers.txt>`` (kept across clones), run every tool of every scenario
(bench/scenarios/*.py) 3 times (1 in quick mode, and 1 for a tool whose first run takes more
than ``--slow`` seconds), then print a table and write bench/results/latest.json. Each run is
a fresh process; peak RSS is that process tree's maximum resident set (``wait4``).

A tool too slow for the whole table (a row-by-row peer) reads a subset, the first N keys
(``ToolRun.rows``): its entry has ``rows`` = what it moved, ``subset_of`` = the scenario's
rows and the note ``subset: N of M rows``; rows/s stay comparable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, Context, Scenario, cached_dir, recipe_key

ROOT = BENCH_DIR.parent
SERVICES_DIR = os.environ.get("AGGREGATOR_SERVICES_DIR", "/tmp/aggregator-services")


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def start_services() -> dict[str, str]:
    """Start PostgreSQL, MariaDB and Redis; their ``AGGREGATOR_TEST_*`` variables."""
    env = dict(os.environ, AGGREGATOR_SERVICES_DIR=SERVICES_DIR)
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "start"], check=True, env=env)
    found: dict[str, str] = {}
    for line in (Path(SERVICES_DIR) / "env").read_text().splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            found[name.strip()] = value.strip()
    if "AGGREGATOR_TEST_PG_URL" not in found:
        raise SystemExit("services.sh did not write the PostgreSQL URL")
    return found


def with_db(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + db


def psql(url: str, *args: str) -> str:
    return sh(["psql", "-qAtX", url, *args]).stdout.strip()


def build_data(server: str, quick: bool) -> tuple[str, str]:
    scale, wide_rows = (2, 80_000) if quick else (50, 2_000_000)
    db = "aggbench_quick" if quick else "aggbench"
    url, target = with_db(server, db), with_db(server, db + "_target")
    marker = f"scale={scale} wide={wide_rows} recipe={recipe_key(BENCH_DIR / 'data.sql')}"
    for name in (db, db + "_target"):
        if psql(server, "-c", f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "0":
            psql(server, "-c", f'CREATE DATABASE "{name}"')
    try:
        ready = psql(url, "-c", "SELECT note FROM bench_meta") == marker
    except subprocess.CalledProcessError:
        ready = False
    if not ready:
        print(f"[bench] building data ({marker}) in {db} ...", flush=True)
        started = time.perf_counter()
        sh(["pgbench", "-i", "-q", "-s", str(scale), url])
        sh(
            [
                "psql",
                "-qX",
                url,
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"rows={wide_rows}",
                "-f",
                str(BENCH_DIR / "data.sql"),
            ]
        )
        psql(
            url,
            "-c",
            "DROP TABLE IF EXISTS bench_meta",
            "-c",
            "CREATE TABLE bench_meta (note text)",
        )
        psql(url, "-c", f"INSERT INTO bench_meta VALUES ('{marker}')")
        print(f"[bench] data built in {time.perf_counter() - started:.0f}s", flush=True)
    return url, target


def peers_python() -> str:
    """The peers' interpreter: a virtualenv per recipe (requirements, Python), built once."""
    requirements = BENCH_DIR / "requirements-peers.txt"
    venv = cached_dir("venv-peers", requirements, sys.version)
    stamp = venv / ".installed"
    if not stamp.exists():
        print(f"[bench] installing peer tools into {venv} ...", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        stamp.touch()
        print(f"[bench] peers installed in {time.perf_counter() - started:.0f}s", flush=True)
    return str(venv / "bin" / "python")


Annotate = Callable[[list[dict[str, Any]]], dict[tuple[str, str], str]]
ANNOTATORS: list[Annotate] = []  # scenario modules' optional ``annotate(results)``


def discover_scenarios(ctx: Context) -> list[Scenario]:
    found: list[Scenario] = []
    for path in sorted((BENCH_DIR / "scenarios").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"bench_scenario_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "setup_sql") and not ctx.quick:
            for statement in module.setup_sql(ctx):
                psql(ctx.pg_url, "-c", statement)
        found.extend(module.scenarios(ctx))
        if hasattr(module, "annotate"):
            ANNOTATORS.append(module.annotate)
    return found


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the process tree, and stderr tail on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    failure = "" if proc.returncode == 0 else err.decode(errors="replace")[-600:]
    return seconds, usage.ru_maxrss / 1024, failure


def read_report(path: Path) -> dict[str, float]:
    """The numeric fields of a tool's report file (empty when it wrote none)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        k: float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="scale 2, one run per tool")
    p.add_argument("--runs", type=int, default=None)
    # 45 s: the slowest peers (row-by-row paths, even on subsets) run once, so the full
    # bench stays near 50 minutes; runs that long vary little between repeats
    p.add_argument("--slow", type=float, default=45.0, help="seconds after which a tool runs once")
    p.add_argument("--only", nargs="*", help="scenarios, tools or scenario:tool pairs to run")
    a = p.parse_args()
    runs = a.runs or (1 if a.quick else 3)
    services = start_services()
    url, target = build_data(services["AGGREGATOR_TEST_PG_URL"], a.quick)
    work = BENCH_DIR / "work"
    work.mkdir(exist_ok=True)
    rows = {
        t: int(psql(url, "-c", f"SELECT count(*) FROM {t}")) for t in ("pgbench_accounts", "wide")
    }
    ctx = Context(
        url,
        target,
        str(ROOT / ".venv" / "bin" / "python"),
        peers_python(),
        work,
        a.quick,
        rows,
        services,
    )
    results: list[dict[str, Any]] = []
    notes: dict[tuple[str, str], str] = {}
    failed: list[tuple[str, str]] = []
    for scenario in discover_scenarios(ctx):
        for tool, spec in scenario.tools.items():
            wanted = {scenario.name, tool, f"{scenario.name}:{tool}"}
            if a.only and not wanted & set(a.only):
                continue
            times, peaks = [], []
            measured: dict[str, list[float]] = {}
            for i in range(runs):
                for step in spec.prepare:
                    subprocess.run(step, check=True, capture_output=True)
                if spec.report is not None:
                    spec.report.unlink(missing_ok=True)
                seconds, peak, failure = timed(spec.cmd)
                if failure:
                    notes[(scenario.name, tool)] = (
                        "FAILED: " + failure.strip().splitlines()[-1][:120]
                    )
                    print(f"[bench] {scenario.name} {tool} failed:\n{failure}", flush=True)
                    break
                times.append(seconds)
                peaks.append(peak)
                if spec.report is not None:
                    for key, value in read_report(spec.report).items():
                        measured.setdefault(key, []).append(value)
                print(
                    f"[bench] {scenario.name:26s} {tool:15s} run {i + 1}: "
                    f"{seconds:7.2f}s {peak:6.0f} MB",
                    flush=True,
                )
                if seconds > a.slow and i == 0 and runs > 1:
                    notes[(scenario.name, tool)] = f"1 run (> {a.slow:.0f}s)"
                    break
            if not times:
                failed.append((scenario.name, tool))
                continue
            n = spec.rows or scenario.rows
            median = statistics.median(times)
            subset = n < scenario.rows
            notes[(scenario.name, tool)] = "; ".join(
                filter(
                    None,
                    [
                        f"subset: {n:,} of {scenario.rows:,} rows" if subset else "",
                        spec.note,
                        notes.get((scenario.name, tool)),
                    ],
                )
            )
            results.append(
                {
                    "scenario": scenario.name,
                    "tool": tool,
                    "rows": n,
                    **({"subset_of": scenario.rows} if subset else {}),
                    "runs": len(times),
                    "seconds": round(median, 3),
                    "rows_per_s": round(n / median),
                    "peak_rss_mb": round(max(peaks)),
                    **{f"{unit}_per_s": round(k / median, 1) for unit, k in spec.units.items()},
                    **spec.extra,
                    **{k: round(statistics.median(v), 3) for k, v in measured.items()},
                }
            )
    merged = save(results, a.only is not None)
    for annotate in ANNOTATORS:  # notes computed across scenarios (ratios in one run)
        for key, text in annotate(merged).items():
            notes[key] = "; ".join(filter(None, [notes.get(key), text]))
    report(results, notes, failed)
    return 0


def report(
    results: list[dict[str, Any]],
    notes: dict[tuple[str, str], str],
    failed: list[tuple[str, str]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    copy = {r["scenario"]: r["rows_per_s"] for r in results if r["tool"] == "copy"}
    table = Table(title="make bench: rows/s ratio is against raw binary COPY to /dev/null")
    for column in (
        "scenario",
        "tool",
        "rows",
        "seconds",
        "rows/s",
        "vs copy",
        "peak RSS MB",
        "note",
    ):
        table.add_column(
            column, justify="left" if column in ("scenario", "tool", "note") else "right"
        )
    standard = {"scenario", "tool", "rows", "subset_of", "runs", "seconds", "rows_per_s"}
    standard.add("peak_rss_mb")
    for r in results:
        ratio = r["rows_per_s"] / copy[r["scenario"]] if r["scenario"] in copy else None
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k not in standard)
        note = "; ".join(filter(None, [figures, notes.get((r["scenario"], r["tool"]), "")]))
        table.add_row(
            r["scenario"],
            r["tool"],
            f"{r['rows']:,}" + (" (subset)" if "subset_of" in r else ""),
            f"{r['seconds']:.2f}",
            f"{r['rows_per_s']:,}",
            f"{ratio:.2f}x" if ratio else "",
            str(r["peak_rss_mb"]),
            note,
        )
    for scenario, tool in failed:
        table.add_row(scenario, tool, "", "", "", "", "", notes.get((scenario, tool), "FAILED"))
    Console(width=160).print(table)


def save(results: list[dict[str, Any]], partial: bool) -> list[dict[str, Any]]:
    """Write latest.json (a partial run replaces only its own entries); the entries."""
    out = BENCH_DIR / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    merged = results
    if partial and out.exists():
        done = {(r["scenario"], r["tool"]) for r in results}
        old = json.loads(out.read_text()).get("results", [])
        merged = [r for r in old if (r["scenario"], r["tool"]) not in done] + results
    out.write_text(json.dumps({"results": merged}, indent=2) + "\n")
    print(f"[bench] wrote {out.relative_to(ROOT)}")
    return merged


if __name__ == "__main__":
    sys.exit(main())
