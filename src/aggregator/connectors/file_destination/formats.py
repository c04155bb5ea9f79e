"""Writing and reading the ``files`` destination's formats exactly (Parquet, CSV, JSON Lines).

CSV and JSON Lines write decimals as exact text, timestamps as ISO-8601 (``+00:00`` for
instants), UUIDs canonically, binary as base64, lists/structs as JSON (CSV) or nested JSON
(JSONL); the recorded schema says how to read them back.
"""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.parse
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from aggregator.connectors.file_destination.config import FileDestinationConfig
from aggregator.connectors.sqlite.types import text_form, to_arrow
from aggregator.core.errors import ConnectorError
from aggregator.core.schema import conform

PART = re.compile(r"^part-(\d{8,})-(\d{4,})\.")
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Fit a table read back from a file (older schema, partition column) to ``schema``."""
    batches = [conform(b, schema) for b in table.to_batches()]
    return pa.Table.from_batches(batches, schema=schema)


def _native_text(dtype: pa.DataType) -> bool:
    """Types CSV and JSON write exactly as they are."""
    return bool(
        pa.types.is_boolean(dtype)
        or pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_null(dtype)
    )


def _is_binary(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    )


def _base64(values: pa.Array) -> pa.Array:
    return pa.array(
        [None if v is None else base64.b64encode(v).decode("ascii") for v in values.to_pylist()],
        pa.string(),
    )


def csv_friendly(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = []
    for column in batch.columns:
        if _native_text(column.type):
            arrays.append(column)
        elif _is_binary(column.type):
            arrays.append(_base64(column))
        else:
            arrays.append(text_form(column))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def jsonl_bytes(batch: pa.RecordBatch) -> bytes:
    """JSON Lines of ``batch``, rendered by DuckDB (vectorized).

    Booleans, numbers and strings are written natively; binary as base64; other scalars as
    their exact text (:func:`text_form`); lists and structs as nested JSON whose leaves keep
    exact text.
    """
    arrays, pairs = [], []
    for i, (f, column) in enumerate(zip(batch.schema, batch.columns, strict=True)):
        name = f"c{i}"
        dtype = column.type
        if _native_text(dtype):
            arrays.append(column)
            value = f'"{name}"'
        elif _is_binary(dtype):
            arrays.append(_base64(column))
            value = f'"{name}"'
        elif pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_struct(dtype):
            arrays.append(text_form(column))
            value = f'"{name}"::JSON'
        else:
            arrays.append(text_form(column))
            value = f'"{name}"'
        key = f.name.replace("'", "''")
        pairs.append(f"'{key}', {value}")
    if batch.num_rows == 0:
        return b""
    prepared = pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])
    import duckdb  # only JSON Lines needs it: Parquet and CSV runs skip the import

    with duckdb.connect() as con:
        con.register("batch", prepared)
        lines = con.sql(
            f"SELECT json_object({', '.join(pairs)})::VARCHAR || chr(10) FROM batch"
        ).to_arrow_table()
    text = lines.column(0).combine_chunks()
    _, offset_buffer, data = text.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(text) + 1, [None, offset_buffer], offset=text.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    result: bytes = data[start:end].to_pybytes()
    return result


def _decode(values: list[Any], dtype: pa.DataType, name: str) -> pa.Array:
    """Values read from CSV/JSONL (text or JSON) back to ``dtype``, exactly."""
    try:
        if _is_binary(dtype):
            return pa.array([None if v is None else base64.b64decode(v) for v in values], dtype)
        if pa.types.is_boolean(dtype) and all(v is None or isinstance(v, bool) for v in values):
            return pa.array(values, dtype)
        if pa.types.is_floating(dtype) and any(isinstance(v, str) for v in values):
            return pc.cast(pa.array(values, pa.string()), dtype)
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return pa.array(values, dtype)
        return to_arrow(values, dtype)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise ConnectorError(f"cannot read column {name!r} back as {dtype}: {exc}") from exc


def read_csv_exact(data: bytes, schema: pa.Schema) -> pa.Table:
    """Read a CSV file this destination wrote, with the types of ``schema``."""
    convert = pacsv.ConvertOptions(
        column_types={f.name: pa.string() for f in schema},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    raw = pacsv.read_csv(io.BytesIO(data), convert_options=convert)
    arrays, fields = [], []
    for f in schema:
        if f.name not in raw.column_names:
            continue
        arrays.append(_decode(raw.column(f.name).to_pylist(), f.type, f.name))
        fields.append(pa.field(f.name, f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def read_jsonl_exact(data: bytes, schema: pa.Schema) -> pa.Table:
    """Read a JSON Lines file this destination wrote, with the types of ``schema``."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    present = [f for f in schema if any(f.name in r for r in rows)] if rows else list(schema)
    arrays = [_decode([r.get(f.name) for r in rows], f.type, f.name) for f in present]
    return pa.Table.from_arrays(arrays, schema=pa.schema(present))


def read_file(fs: Any, config: FileDestinationConfig, path: str, schema: pa.Schema) -> pa.Table:
    """Read one of this destination's files back with exact types."""
    fmt = config.format
    partition = config.partition_by
    file_schema = pa.schema([f for f in schema if f.name != partition])
    compression = None if fmt == "parquet" else config.compression
    with fs.open(path, "rb", compression=compression) as f:
        if fmt == "parquet":
            table = pq.read_table(f)
        elif fmt == "csv":
            table = read_csv_exact(f.read(), file_schema)
        else:
            table = read_jsonl_exact(f.read(), file_schema)
    if partition:
        segment = next((s for s in path.split("/") if s.startswith(f"{partition}=")), None)
        text = urllib.parse.unquote(segment.split("=", 1)[1]) if segment else HIVE_NULL
        values = [None if text == HIVE_NULL else text] * table.num_rows
        table = table.append_column(
            partition, _decode(values, schema.field(partition).type, partition)
        )
    return table


def read_files(
    fs: Any, config: FileDestinationConfig, directory: str, schema: pa.Schema
) -> list[pa.Table]:
    """The committed part files of ``directory``, in commit order, as exact tables."""
    if not fs.exists(directory):
        return []
    files = []
    for path in fs.find(directory):
        m = PART.match(str(path).rsplit("/", 1)[-1])
        if m is not None:
            files.append((int(m.group(1)), int(m.group(2)), str(path)))
    return [read_file(fs, config, path, schema) for _, _, path in sorted(files)]
