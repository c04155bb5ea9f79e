"""Arrow to DuckDB column types, and the casts for what DuckDB cannot hold natively."""

from __future__ import annotations

import pyarrow as pa

from aggregator.core.schema import cast_array

_SIMPLE = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float16(): "FLOAT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.date32(): "DATE",
    pa.date64(): "DATE",
    pa.time64("us"): "TIME",
    pa.null(): "VARCHAR",
}


def quote(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def _stored_as_text(dtype: pa.DataType) -> bool:
    """Types DuckDB cannot hold exactly, stored as their exact text instead."""
    if pa.types.is_decimal256(dtype) and dtype.precision > 38:
        return True
    return pa.types.is_timestamp(dtype) and dtype.unit == "ns" and dtype.tz is not None


def duckdb_type(dtype: pa.DataType) -> str:
    """The DuckDB column type that holds ``dtype`` exactly."""
    if isinstance(dtype, pa.JsonType):
        return "JSON"
    if isinstance(dtype, pa.UuidType):
        return "UUID"
    if _stored_as_text(dtype):
        return "VARCHAR"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        if dtype.tz:
            return "TIMESTAMPTZ"
        return {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}[
            dtype.unit
        ]
    if pa.types.is_time(dtype):
        return "TIME"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"{duckdb_type(dtype.value_type)}[]"
    if pa.types.is_struct(dtype):
        inner = ", ".join(f"{quote(f.name)} {duckdb_type(f.type)}" for f in dtype)
        return f"STRUCT({inner})"
    if pa.types.is_dictionary(dtype):
        return duckdb_type(dtype.value_type)
    if dtype in _SIMPLE:
        return _SIMPLE[dtype]
    raise TypeError(f"no exact DuckDB type for {dtype}")


def to_duckdb_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast columns DuckDB cannot scan exactly to their text form (decimal256, tz-aware ns)."""
    if not any(_stored_as_text(f.type) or pa.types.is_decimal256(f.type) for f in batch.schema):
        return batch
    arrays, fields = [], []
    for f, column in zip(batch.schema, batch.columns, strict=True):
        if _stored_as_text(f.type):
            arrays.append(cast_array(column, pa.string()))
            fields.append(pa.field(f.name, pa.string()))
        elif pa.types.is_decimal256(f.type):
            target = pa.decimal128(f.type.precision, f.type.scale)
            arrays.append(cast_array(column, target))
            fields.append(pa.field(f.name, target))
        else:
            arrays.append(column)
            fields.append(f)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
