"""`make demo`: aggregate four sources into DuckDB, then show what happened.

Each run "delivers" the next day of data into ``.demo/`` (day 1, then day 2, then nothing
new), starts the product catalog API (``api_server.py``, a paginated JSON API) on a free
loopback port, runs ``pipeline.yml`` on the embedded defaults (SQLite metadata, DuckDB
warehouse), stops the API and prints the per-stream summary, the quarantined rows and a
sample query. Run it again to see the incremental effect; ``make clean`` (or
``rm -rf .demo``) starts over.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.console import Console

from aggregator.cli.commands.quality import profile_table, results_table
from aggregator.cli.render import ProgressObserver, arrow_table, run_table
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.observability.logging import configure_logging
from aggregator.pipeline.spec import load_pipeline
from aggregator.quality import store as quality_store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEMO = Path(os.environ.get("DEMO_DIR", ROOT / ".demo")).resolve()
BULK_ROWS = 200_000
console = Console()


def deliver(day: int) -> None:
    """Copy day ``day``'s files into the demo directory and apply its CRM changes."""
    source = HERE / "data" / f"day{day}"
    (DEMO / "data" / "orders").mkdir(parents=True, exist_ok=True)
    (DEMO / "data" / "events").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "orders.csv", DEMO / "data" / "orders" / f"orders_day{day}.csv")
    shutil.copy(source / "events.jsonl", DEMO / "data" / "events" / f"events_day{day}.jsonl")
    (DEMO / "data" / "api").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "products.json", DEMO / "data" / "api" / "products.json")
    with sqlite3.connect(DEMO / "data" / "crm.sqlite") as con:
        con.executescript((source / "crm.sql").read_text())
    if day == 1:
        write_bulk_orders(DEMO / "data" / "orders" / "orders_archive.csv")


def write_bulk_orders(path: Path) -> None:
    """A larger, generated order history, so the summary shows real throughput."""
    ids = pa.array(range(1_000_001, 1_000_001 + BULK_ROWS), pa.int64())
    cents = pc.multiply(pc.bit_wise_and(ids, 4095), 37)
    whole = pc.divide(cents, 100)
    fraction = pc.subtract(cents, pc.multiply(whole, 100))
    amount_text = pc.binary_join_element_wise(
        pc.cast(whole, pa.string()), pc.utf8_lpad(pc.cast(fraction, pa.string()), 2, "0"), "."
    )
    table = pa.table(
        {
            "order_id": ids,
            "customer_id": pc.add(pc.bit_wise_and(ids, 7), 1),
            "amount": amount_text,
            "currency": pa.array(["EUR"] * BULK_ROWS),
            "status": pa.array(["paid"] * BULK_ROWS),
            "ordered_at": pa.array(["2025-06-01T12:00:00+00:00"] * BULK_ROWS),
            "updated_at": pa.array(["2025-06-01T12:00:00+00:00"] * BULK_ROWS),
        }
    )
    pacsv.write_csv(table, path)


@contextmanager
def catalog_api() -> Iterator[str]:
    """The product catalog API serving ``.demo/data/api/products.json``; its base URL."""
    server = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "api_server.py"),
            "--data",
            str(DEMO / "data" / "api" / "products.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the demo API server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def show_quarantine(con: duckdb.DuckDBPyConnection) -> None:
    """Print what each stream quarantined in its latest run, with reason and position."""
    tables = con.sql(
        "select table_name from information_schema.tables "
        "where table_name like '%__quarantine' order by 1"
    ).fetchall()
    for (table,) in tables:
        rows = con.sql(
            f'select reason, position from "{table}" '
            f'where run_id = (select max_by(run_id, quarantined_at) from "{table}") '
            "order by position"
        ).fetchall()
        console.print(f"[bold]{table}[/bold] ({len(rows)} rows in the latest run with rejects)")
        for reason, position in rows:
            console.print(
                f"  {Path(position).name if position else '?'}: {reason}", highlight=False
            )


def show_quality(store: MetadataStore, run_id: str) -> None:
    """Print this run's check results and the latest stored profile of ``customers``."""
    results = quality_store.run_results(store, run_id)
    if results:
        console.print(results_table(results, "data quality of this run"))
    profile = quality_store.latest_profile(store, "shop_demo", "customers")
    if profile is not None and profile.columns:
        title = (
            f"customers: profile (run {profile.run_id[:8]}; email hashed with a salt, phone masked)"
        )
        console.print(profile_table(profile.columns, title))


SAMPLE_QUERY = """
with o as (
  select customer_id, count(*) as recent_orders, sum(amount) as revenue
  from orders where order_id < 1000000 group by all
), e as (
  select customer_id, count(*) as events from events group by all
)
select c.customer_id, c.name, c.phone, c.country, c.credit_limit,
       coalesce(o.recent_orders, 0) as recent_orders, o.revenue,
       coalesce(e.events, 0) as events
from customers c left join o using (customer_id) left join e using (customer_id)
order by c.customer_id
"""


def main() -> int:
    DEMO.mkdir(parents=True, exist_ok=True)
    marker = DEMO / "day"
    day = int(marker.read_text()) + 1 if marker.exists() else 1
    if day <= 2:
        deliver(day)
        marker.write_text(str(day))
        console.rule(f"[bold]demo run {day}: day {day} of data delivered to {DEMO}")
    else:
        console.rule(f"[bold]demo run {day}: no new data since the last run (expect 0 rows read)")

    configure_logging("warning")
    os.environ["DEMO_DIR"] = str(DEMO)
    os.environ.setdefault("AGGREGATOR_HOME", str(DEMO / ".aggregator"))
    products = DEMO / "data" / "api" / "products.json"
    if not products.exists():  # a demo directory from before the API stream existed
        products.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "data" / f"day{min(day, 2)}" / "products.json", products)
    (DEMO / ".aggregator").mkdir(exist_ok=True)
    store = MetadataStore(f"sqlite:///{DEMO / '.aggregator' / 'metadata.db'}")
    progress = ProgressObserver(console) if console.is_terminal else None
    engine = LocalEngine(store, progress)
    with catalog_api() as url:
        os.environ["DEMO_API_URL"] = url
        spec = load_pipeline(HERE / "pipeline.yml")
        try:
            record = engine.run(spec, spec_path=str(HERE / "pipeline.yml"))
        finally:
            if progress is not None:
                progress.stop()

    console.print(run_table(record))
    for s in record.streams:
        assert s.rows_read == s.rows_loaded + s.rows_quarantined
    if record.status != "succeeded":
        console.print(f"[red]run failed:[/red] {record.error}")
        return 1
    with duckdb.connect(str(DEMO / "warehouse.duckdb"), read_only=True) as con:
        show_quarantine(con)
        show_quality(store, record.id)
        console.print(arrow_table(con.sql(SAMPLE_QUERY).to_arrow_table(), "sample query"))
    console.print(
        f"metadata: {store.engine.url} · warehouse: {DEMO / 'warehouse.duckdb'}\n"
        "Run `make demo` again to load the next day incrementally."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
