"""Schema evolution: compare an incoming batch with the destination schema and apply policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.catalog import SchemaPolicy
from aggregator.core.errors import SchemaPolicyError
from aggregator.core.types import type_to_string, widen


@dataclass
class SchemaDiff:
    """What changed between two schemas."""

    added: list[tuple[str, pa.DataType]] = field(default_factory=list)
    widened: list[tuple[str, pa.DataType, pa.DataType]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.widened)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly description, stored with each schema version."""
        return {
            "added": [{"name": n, "type": type_to_string(t)} for n, t in self.added],
            "widened": [
                {"name": n, "from": type_to_string(a), "to": type_to_string(b)}
                for n, a, b in self.widened
            ],
        }


@dataclass
class Reconciled:
    """A batch made to fit the target schema, plus what did not fit."""

    batch: pa.RecordBatch
    schema: pa.Schema
    diff: SchemaDiff
    rejected: dict[int, str] = field(default_factory=dict)


def normalize_column_names(names: list[str]) -> list[str]:
    """Make column names usable: empty names become ``column_N``, duplicates get ``_2``, ``_3``."""
    result: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(names, start=1):
        name = raw.strip() or f"column_{i}"
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        result.append(candidate)
    return result


def _storage(dtype: pa.DataType) -> pa.DataType:
    return dtype.storage_type if isinstance(dtype, pa.ExtensionType) else dtype


def cast_array(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    """Cast exactly (``safe=True``), through storage types for extension types."""
    if values.type == dtype:
        return values
    if isinstance(values.type, pa.ExtensionType):
        values = values.storage
    if isinstance(dtype, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(dtype, pc.cast(values, dtype.storage_type))
    return pc.cast(values, dtype)


def decimal_text(values: pa.Array) -> pa.Array:
    """Exact plain text of decimals with all ``scale`` digits (never exponent notation).

    Arrow renders values below 1e-6 as ``1E-10``; only those values are re-rendered in
    Python, so ordinary columns stay vectorized.
    """
    text = pc.cast(values, pa.string())
    has_exponent = pc.match_substring(text, "E")
    if not pc.any(has_exponent).as_py():
        return text
    rows = pc.indices_nonzero(has_exponent)
    fixed = pa.array([format(d, "f") for d in pc.take(values, rows).to_pylist()], pa.string())
    return pc.replace_with_mask(text, has_exponent, fixed)


def _to_string(values: pa.Array) -> pa.Array:
    if isinstance(values.type, pa.UuidType):
        hexed = pc.binary_to_hex(values.storage) if hasattr(pc, "binary_to_hex") else None
        if hexed is not None:
            return hexed
    if pa.types.is_decimal(values.type):
        return decimal_text(values)
    return cast_array(values, pa.string())


def _fits(values: pa.Array, dtype: pa.DataType) -> list[int]:
    """Rows whose value does not cast exactly to ``dtype`` (empty when all fit)."""
    try:
        cast_array(values, dtype)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = []
    for i in range(len(values)):
        if not values[i].is_valid:
            continue
        try:
            cast_array(values.slice(i, 1), dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append(i)
    return bad


def _common_type(current: pa.DataType, incoming: pa.DataType) -> pa.DataType:
    merged = widen(current, incoming)
    if merged is not None:
        return merged
    return pa.string()


def reconcile(
    stream: str, current: pa.Schema | None, batch: pa.RecordBatch, policy: SchemaPolicy
) -> Reconciled:
    """Fit ``batch`` to ``current`` under ``policy``; returns the (possibly new) target schema.

    Columns missing from the batch are filled with nulls. Under ``evolve`` new columns are
    added and types widened; under ``freeze`` any change raises :class:`SchemaPolicyError`;
    ``discard_columns`` drops new columns; ``quarantine_rows`` rejects rows that carry values
    in new columns. Under the last two, rows whose values do not fit the current type are
    rejected with a reason.
    """
    if current is None:
        diff = SchemaDiff(added=[(f.name, f.type) for f in batch.schema])
        return Reconciled(batch, batch.schema, diff)
    known = {f.name: f.type for f in current}
    diff = SchemaDiff()
    for f in batch.schema:
        if f.name not in known:
            diff.added.append((f.name, f.type))
        elif f.type != known[f.name]:
            merged = _common_type(known[f.name], f.type)
            if merged != known[f.name]:
                diff.widened.append((f.name, known[f.name], merged))
    rejected: dict[int, str] = {}
    if not diff:
        target = current
    elif policy is SchemaPolicy.EVOLVE:
        widened = {name: new for name, _, new in diff.widened}
        fields = [pa.field(f.name, widened.get(f.name, f.type)) for f in current]
        fields += [pa.field(name, dtype) for name, dtype in diff.added]
        target = pa.schema(fields)
    elif policy is SchemaPolicy.FREEZE:
        changes = json.dumps(diff.to_json())
        raise SchemaPolicyError(
            f"stream {stream!r}: schema is frozen but incoming data changes it: {changes}"
        )
    else:
        target = current
        for name, _, _ in diff.widened:
            for row in _fits(batch.column(name), known[name]):
                rejected.setdefault(
                    row, f"column {name!r}: value does not fit frozen type {known[name]}"
                )
        if policy is SchemaPolicy.QUARANTINE_ROWS:
            for name, _ in diff.added:
                valid = pc.is_valid(batch.column(name)).to_pylist()
                for row, is_valid in enumerate(valid):
                    if is_valid:
                        rejected.setdefault(row, f"column {name!r} is not in the stream schema")
        diff = SchemaDiff()
    return Reconciled(conform(batch, target, rejected), target, diff, rejected)


def conform(
    batch: pa.RecordBatch, target: pa.Schema, rejected: dict[int, str] | None = None
) -> pa.RecordBatch:
    """Reorder, cast and null-fill ``batch`` to ``target``; rows in ``rejected`` are removed."""
    if rejected:
        keep = pa.array([i not in rejected for i in range(batch.num_rows)])
        batch = batch.filter(keep)
    arrays = []
    names = set(batch.schema.names)
    for f in target:
        if f.name not in names:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(f.name)
        if column.type == f.type:
            arrays.append(column)
        elif pa.types.is_string(f.type):
            arrays.append(_to_string(column))
        else:
            arrays.append(cast_array(column, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def row_json(batch: pa.RecordBatch, row: int) -> str:
    """One row as JSON text, for quarantine entries (error path only)."""
    return json.dumps(batch.slice(row, 1).to_pylist()[0], default=str, ensure_ascii=False)


def is_textual_type(dtype: pa.DataType) -> bool:
    """True for the string storage of a type (used by destinations to pick TEXT)."""
    storage = _storage(dtype)
    return bool(pa.types.is_string(storage) or pa.types.is_large_string(storage))
