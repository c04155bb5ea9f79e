"""Lineage derived from pipeline specs: datasets, stream edges and column mappings.

Datasets are named like OpenLineage's naming conventions (``postgres://host:port`` +
``database.schema.table``, ``mysql://host:port`` + ``database.table``, ``sqlite://path``,
``duckdb://path`` + ``schema.table``, ``file`` + path pattern); a source without a
physical location is ``aggregator://<pipeline>/<source>`` + stream. Configs are read in
their redacted form: a location inside a secret (a connection URL) is never used.

Column lineage follows the stream's transform steps: ``rename`` and ``select``/``drop``
map names, ``derive`` takes the columns its SQL expression reads, ``lookup`` adds columns
of the reference table, and steps that keep a column's name keep its source. Steps that
invent names from data (``flatten``, ``unnest``, ``normalize_names``) end column lineage
for that stream (``complete`` is false); dataset lineage is always known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from aggregator.api.services.datasets import declared_streams

_OPAQUE = {"flatten", "unnest", "normalize_names"}


@dataclass(frozen=True)
class Dataset:
    """An OpenLineage dataset identity."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """A stable id for graph nodes."""
        return f"{self.namespace}/{self.name}"


@dataclass
class StreamLineage:
    """One stream of a pipeline: its input, its output and column mappings where known."""

    pipeline: str
    stream: str
    source: Dataset
    destination: Dataset
    columns: dict[str, list[tuple[Dataset, str]]] = field(default_factory=dict)
    transformations: dict[str, str] = field(default_factory=dict)
    complete: bool = True


def _location(config: dict[str, Any]) -> tuple[str, int | None]:
    return str(config.get("host", "localhost")), config.get("port")


def _abs(path: Any) -> str:
    return (
        str(Path(str(path)).expanduser().resolve())
        if path not in (None, ":memory:")
        else ":memory:"
    )


def destination_dataset(dest: dict[str, Any], table: str) -> Dataset:
    """Where a destination keeps ``table``."""
    kind, config = str(dest.get("type", "duckdb")), dest.get("config") or {}
    if kind == "postgres":
        host, port = _location(config)
        db, schema = config.get("database", "postgres"), config.get("schema", "public")
        return Dataset(f"postgres://{host}:{port or 5432}", f"{db}.{schema}.{table}")
    if kind == "mysql":
        host, port = _location(config)
        return Dataset(f"mysql://{host}:{port or 3306}", f"{config.get('database', '')}.{table}")
    if kind == "duckdb":
        path = _abs(config.get("path", "warehouse.duckdb"))
        return Dataset(f"duckdb://{path}", f"{config.get('schema', 'main')}.{table}")
    if kind == "sqlite":
        return Dataset(f"sqlite://{_abs(config.get('path', 'warehouse.sqlite'))}", table)
    return Dataset(f"{kind}://destination", table)


def source_dataset(pipeline: str, source: dict[str, Any], stream: str) -> Dataset:
    """Where a source reads ``stream`` from."""
    kind, config = str(source.get("type", "")), source.get("config") or {}
    if kind == "postgres":
        host, port = _location(config)
        name = stream if "." in stream else f"public.{stream}"
        return Dataset(
            f"postgres://{host}:{port or 5432}", f"{config.get('database', 'postgres')}.{name}"
        )
    if kind == "mysql":
        host, port = _location(config)
        return Dataset(f"mysql://{host}:{port or 3306}", f"{config.get('database', '')}.{stream}")
    if kind == "sqlite" and config.get("path"):
        return Dataset(f"sqlite://{_abs(config['path'])}", stream)
    if kind == "files":
        for entry in config.get("streams") or []:
            if isinstance(entry, dict) and entry.get("name") == stream and entry.get("path"):
                return Dataset("file", str(entry["path"]))
    return Dataset(f"aggregator://{pipeline}/{source.get('name', kind)}", stream)


def pipeline_lineage(
    name: str, spec: dict[str, Any], output_columns: dict[str, list[str]]
) -> list[StreamLineage]:
    """Lineage of every declared stream; ``output_columns`` are known table columns."""
    dest = spec.get("destination") or {}
    sources = {str(s.get("name")): s for s in spec.get("sources") or [] if isinstance(s, dict)}
    out = []
    for stream, (source_name, table) in declared_streams(spec).items():
        source = sources.get(source_name, {})
        item = StreamLineage(
            name, stream, source_dataset(name, source, stream), destination_dataset(dest, table)
        )
        steps = _steps(source, stream)
        _columns(item, steps, output_columns.get(table, []))
        out.append(item)
    return out


def _steps(source: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    for entry in source.get("streams") or []:
        if isinstance(entry, dict) and entry.get("name") == stream:
            return [s for s in entry.get("transforms") or [] if isinstance(s, dict)]
    return []


def _columns(item: StreamLineage, steps: list[dict[str, Any]], outputs: list[str]) -> None:
    """Fill ``item.columns`` by following the steps (identity for untouched columns)."""
    mapping: dict[str, list[tuple[Dataset, str]]] = {}
    kinds: dict[str, str] = {}
    dropped: set[str] = set()

    def origin(column: str) -> list[tuple[Dataset, str]]:
        if column in dropped:
            return []
        return mapping.get(column, [(item.source, column)])

    for step in steps:
        kind = step.get("step")
        if kind in _OPAQUE:
            item.complete = False
            return
        if kind == "rename":
            for old, new in (step.get("columns") or {}).items():
                mapping[str(new)] = origin(str(old))
                kinds[str(new)] = kinds.get(str(old), "IDENTITY")
                dropped.discard(str(new))
                if str(old) != str(new):
                    mapping.pop(str(old), None)
                    dropped.add(str(old))
        elif kind == "derive" and isinstance(step.get("column"), str):
            used = _expression_columns(str(step.get("expr", "")))
            found = {o for c in used for o in origin(c)}
            mapping[step["column"]] = sorted(found, key=lambda o: (o[0].key, o[1]))
            kinds[step["column"]] = "TRANSFORMATION"
            dropped.discard(step["column"])
        elif kind == "lookup":
            reference = Dataset("aggregator://lookup", str(step.get("table") or step.get("file")))
            for column in step.get("columns") or []:
                added = f"{step.get('prefix', '')}{column}"
                mapping[added], kinds[added] = [(reference, str(column))], "LOOKUP"
                dropped.discard(added)
        elif kind == "drop":
            dropped.update(str(c) for c in step.get("columns") or [])
        elif kind == "select":
            keep = {str(c) for c in step.get("columns") or []}
            dropped.update(c for c in set(mapping) | set(outputs) if c not in keep)
        elif kind is not None and step.get("columns"):
            for column in step["columns"]:
                kinds.setdefault(str(column), "TRANSFORMATION")
    for column in outputs:
        inputs = origin(column)
        if inputs:
            item.columns[column] = inputs
            item.transformations[column] = kinds.get(column, "IDENTITY")


def _expression_columns(text: str) -> list[str]:
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except Exception:
        return []
    return sorted({c.name for c in tree.find_all(exp.Column)})
