"""Relational steps and the step registry: select, drop, rename, cast, derive, filter,
deduplicate, flatten, unnest, normalize names, map values, lookup, schema mapping, SQL and
Python.

Every step works on a ``pa.Table`` carrying the origin column :data:`ROW`; row work is done
by Arrow compute kernels or DuckDB over Arrow, Python loops only name failing values. The
steps live by theme in :mod:`~aggregator.transform.columns`,
:mod:`~aggregator.transform.structure` and :mod:`~aggregator.transform.code_steps`
(cleansing and PII in :mod:`~aggregator.transform.cleanse`); their names are importable
from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aggregator.transform.base import ROW, Step, Unvalidated
from aggregator.transform.code_steps import Derive, Filter, Python, Sql, load_function
from aggregator.transform.columns import (
    Cast,
    Drop,
    MapSchema,
    MapValues,
    NormalizeNames,
    Rename,
    Select,
    cast_column,
    snake_case,
)
from aggregator.transform.structure import Deduplicate, Flatten, Lookup, Unnest, child_rows

__all__ = [
    "BUILDERS",
    "ROW",
    "Cast",
    "Deduplicate",
    "Derive",
    "Drop",
    "Filter",
    "Flatten",
    "Lookup",
    "MapSchema",
    "MapValues",
    "NormalizeNames",
    "Python",
    "Rename",
    "Select",
    "Sql",
    "Step",
    "Unnest",
    "Unvalidated",
    "cast_column",
    "child_rows",
    "load_function",
    "snake_case",
]

BUILDERS: dict[str, Callable[[Any, int], Step]] = {
    "select": Select,
    "drop": Drop,
    "rename": Rename,
    "cast": Cast,
    "derive": Derive,
    "filter": Filter,
    "deduplicate": Deduplicate,
    "flatten": Flatten,
    "unnest": Unnest,
    "normalize_names": NormalizeNames,
    "map_values": MapValues,
    "lookup": Lookup,
    "map_schema": MapSchema,
    "sql": Sql,
    "python": Python,
}
