"""``aggregator init``: a small project with an example pipeline and data."""

from __future__ import annotations

from pathlib import Path

from aggregator.core.errors import ConfigError

PIPELINE = """\
# An example pipeline: two file streams into a local DuckDB warehouse.
# Every key is documented in docs/pipelines.md. Run it with:
#   aggregator run pipeline.yml
name: example
sources:
  - name: local_files
    type: files
    config:
      streams:
        - name: orders
          path: ${PIPELINE_DIR}/data/orders*.csv
        - name: events
          path: ${PIPELINE_DIR}/data/events*.jsonl
    streams:
      - name: orders
        primary_key: [order_id]
        cursor_field: updated_at      # incremental: only rows newer than the last run
        write_mode: merge             # upsert on order_id
        columns: {amount: "decimal(12,2)"}   # quoted: the comma would split a {...} mapping
      - name: events
        sync_mode: incremental        # files are tracked by modification time
destination:
  type: duckdb
  config:
    path: ${PIPELINE_DIR}/warehouse.duckdb
"""

ORDERS = """\
order_id,customer_id,amount,status,updated_at
1,1,19.99,paid,2026-01-01T10:00:00Z
2,2,5.00,pending,2026-01-01T11:30:00Z
3,1,120.50,paid,2026-01-02T09:15:00+01:00
"""

EVENTS = """\
{"event_id": 1, "customer_id": 1, "kind": "login", "at": "2026-01-01T09:59:00Z"}
{"event_id": 2, "customer_id": 2, "kind": "view", "at": "2026-01-01T11:00:00Z", "page": "/shoes"}
"""


def scaffold_project(directory: Path) -> list[Path]:
    """Write ``pipeline.yml`` and sample data under ``directory``; refuses to overwrite."""
    files = {
        directory / "pipeline.yml": PIPELINE,
        directory / "data" / "orders.csv": ORDERS,
        directory / "data" / "events.jsonl": EVENTS,
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
