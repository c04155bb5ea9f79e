"""Generic source for any database SQLAlchemy can reach: the slower, portable path.

Discovery uses SQLAlchemy's inspector (tables, views, columns, primary keys) and maps the
reflected column types to exact Arrow types (:mod:`.types`). Reads run ``SELECT`` through
the DB-API driver with a server-side cursor where the dialect has one
(``stream_results``), fetch ``batch_size`` rows at a time and build each batch column by
column: every value passes through the driver's Python objects, which is why the
PostgreSQL and MySQL connectors, which bulk-export, are much faster on those databases.
Full refreshes of tables with a one-column primary key read in key order and checkpoint
``{"after": key}`` per batch; incremental streams read ``WHERE cursor > last ORDER BY
cursor`` and checkpoint ``{"cursor": value}`` where the cursor value changes between
batches, so rows sharing the saved value are never skipped.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, SecretStr, field_validator

from aggregator.connectors._bookkeeping import select_tables, table_stream
from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.connectors.sql.ordered import jsonable, ordered_read
from aggregator.connectors.sql.types import arrow_type, to_arrow
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.schema import row_json


class SQLSourceConfig(ConnectorConfig):
    """Which database (a SQLAlchemy URL) and which of its tables."""

    url: SecretStr = Field(
        description="SQLAlchemy URL, e.g. sqlite:///path.db, postgresql+psycopg://user:pw@host/db, "
        "mysql+pymysql://user:pw@host/db (the driver must be installed)."
    )
    schema_: str | None = Field(
        None, alias="schema", description="Schema to read (default: the connection's default)."
    )
    tables: list[str] | None = Field(
        None, description="Tables or views to offer (default: all of the schema)."
    )
    batch_size: int | None = Field(
        None, gt=0, description="Rows per batch (default: the stream's batch_size)."
    )

    @field_validator("url")
    @classmethod
    def _parses(cls, value: SecretStr) -> SecretStr:
        try:
            sa.engine.make_url(value.get_secret_value())
        except sa.exc.ArgumentError:
            raise ValueError("not a SQLAlchemy URL (dialect+driver://user:pw@host/db)") from None
        return value


@dataclass(frozen=True)
class _Relation:
    name: str
    kind: str
    schema: pa.Schema
    declared: dict[str, str]
    as_text: tuple[str, ...]
    primary_key: tuple[str, ...]


class SQLSource(Source[SQLSourceConfig]):
    """Reads tables and views of any SQLAlchemy-supported database (slower generic path)."""

    name: ClassVar[str] = "sql"
    config_model = SQLSourceConfig
    description: ClassVar[str] = "Any SQLAlchemy database (generic, slower path)"

    # ------------------------------------------------------------------ connection

    def _where(self) -> str:
        url = sa.engine.make_url(self.config.url.get_secret_value())
        return url.render_as_string(hide_password=True)

    def _redact(self, text: str) -> str:
        password = sa.engine.make_url(self.config.url.get_secret_value()).password
        return text.replace(str(password), "***") if password else text

    def _engine(self) -> sa.Engine:
        try:
            return sa.create_engine(self.config.url.get_secret_value(), poolclass=sa.NullPool)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConnectorError(
                f"cannot use {self._where()}: its driver is not installed ({exc}); install it, "
                "or name an installed one in the URL (postgresql+psycopg://, mysql+pymysql://)"
            ) from None
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"url: {self._redact(str(exc))}") from None

    def _error(self, exc: BaseException, doing: str) -> ConnectorError:
        detail = getattr(exc, "orig", None) or exc
        text = self._redact(str(detail).strip().splitlines()[0] if str(detail).strip() else "")
        return ConnectorError(f"cannot {doing} {self._where()}: {text}")

    def check(self) -> CheckResult:
        """Connect and list the offered tables."""
        try:
            found = self._relations()
        except (ConnectorError, ConfigError) as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"{self._where()}: {len(found)} tables/views")

    # ------------------------------------------------------------------ discovery

    def _relations(self) -> list[_Relation]:
        engine = self._engine()
        schema = self.config.schema_
        try:
            with engine.connect() as con:
                inspector = sa.inspect(con)
                dialect = con.dialect.name
                names = [(n, "table") for n in inspector.get_table_names(schema=schema)]
                names += [(n, "view") for n in inspector.get_view_names(schema=schema)]
                wanted = select_tables(
                    [(n, k) for n, k in names if not _bookkeeping(n)]
                    if self.config.tables is None
                    else names,
                    self.config.tables,
                    lambda item: (item[0],),
                    lambda missing: (
                        f"tables not found in {self._where()}"
                        + (f" (schema {schema})" if schema else "")
                        + f": {', '.join(missing)} (check `tables` and `schema`)"
                    ),
                )
                return [self._relation(inspector, dialect, n, k) for n, k in wanted]
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc, "read the catalog of") from None
        finally:
            engine.dispose()

    def _relation(self, inspector: Any, dialect: str, name: str, kind: str) -> _Relation:
        schema = self.config.schema_
        fields, declared, as_text = [], {}, []
        for column in inspector.get_columns(name, schema=schema):
            dtype, text = arrow_type(column["type"], dialect)
            fields.append(pa.field(column["name"], dtype, bool(column.get("nullable", True))))
            try:
                declared[column["name"]] = str(column["type"])
            except sa.exc.CompileError:
                declared[column["name"]] = type(column["type"]).__name__
            if text:
                as_text.append(column["name"])
        keys: tuple[str, ...] = ()
        if kind == "table":
            keys = tuple(
                inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ()
            )
        return _Relation(name, kind, pa.schema(fields), declared, tuple(as_text), keys)

    def stream_names(self) -> list[str]:
        """Names of the offered tables and views."""
        return [r.name for r in self._relations()]

    def discover(self) -> Catalog:
        """Tables and views with exact Arrow schemas, keys and cursor candidates."""
        return Catalog(tuple(_stream(r) for r in self._relations()))

    # ------------------------------------------------------------------ reading

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield batches of ``stream``, resuming after ``state``."""
        rel = next((r for r in self._relations() if r.name == stream.name), None)
        if rel is None:
            raise ConfigError(f"stream {stream.name!r} is not a table or view of {self._where()}")
        yield _stream(rel).info()
        for column in rel.as_text:
            yield Log(
                "warning",
                f"{rel.name}.{column}: type {rel.declared[column]} has no exact Arrow type here; "
                "loading its text form as string",
            )
        schema = pa.schema(
            [
                pa.field(f.name, stream.column_types.get(f.name, f.type), f.nullable)
                for f in rel.schema
            ]
        )
        table = sa.table(
            rel.name, *[sa.column(n) for n in schema.names], schema=self.config.schema_
        )
        query = sa.select(*table.c)
        state = state or {}
        cursor_field: str | None = None
        key: str | None = None
        if stream.sync_mode is SyncMode.INCREMENTAL:
            cursor_field = stream.cursor_field
            if not cursor_field or cursor_field not in schema.names:
                raise ConfigError(
                    f"stream {stream.name!r}: incremental sync needs a cursor_field that is a "
                    f"column of {rel.name} (got {cursor_field!r})"
                )
            last = state.get("cursor")
            if last is not None:
                value = _from_state(last, schema.field(cursor_field).type)
                query = query.where(table.c[cursor_field] > sa.bindparam("last", value))
            query = query.order_by(table.c[cursor_field])
        elif len(rel.primary_key) == 1:
            key = rel.primary_key[0]
            after = state.get("after")
            if after is not None and not state.get("complete"):
                value = _from_state(after, schema.field(key).type)
                query = query.where(table.c[key] > sa.bindparam("after", value))
            query = query.order_by(table.c[key])
        yield from self._fetch(rel, schema, query, stream, cursor_field, key, state.get("cursor"))

    def _fetch(
        self,
        rel: _Relation,
        schema: pa.Schema,
        query: sa.Select[Any],
        stream: ConfiguredStream,
        cursor_field: str | None,
        key: str | None,
        last: Any,
    ) -> Iterator[Message]:
        last = yield from ordered_read(
            self._batches(rel, schema, query, stream),
            cursor=cursor_field,
            last=last,
            after=(lambda b: {"after": jsonable(b.column(key)[-1].as_py())}) if key else None,
        )
        if cursor_field is not None:
            yield Checkpoint({"cursor": jsonable(last)})
        else:
            yield Checkpoint({"complete": True})

    def _batches(
        self, rel: _Relation, schema: pa.Schema, query: sa.Select[Any], stream: ConfiguredStream
    ) -> Iterator[tuple[pa.RecordBatch, list[Message]]]:
        """``(typed batch of every row, its messages)`` per ``batch_size`` rows of ``query``."""
        size = self.config.batch_size or stream.batch_size
        engine = self._engine()
        ordinal = 0
        try:
            with engine.connect() as con:
                try:  # untyped columns: values come back exactly as the driver made them
                    result = con.execution_options(stream_results=True).execute(query)
                except sa.exc.SQLAlchemyError as exc:
                    raise self._error(exc, f"read {rel.name} from") from None
                with result:
                    while rows := result.fetchmany(size):
                        batch, bad = _batch(rows, schema)
                        out: list[Message] = []
                        loaded = batch
                        if bad:
                            out.append(_quarantined(rel, rows, batch, bad, ordinal))
                            loaded = batch.filter(
                                pa.array([i not in bad for i in range(len(rows))])
                            )
                        if loaded.num_rows:
                            out.append(Records(loaded))
                        ordinal += len(rows)
                        yield batch, out
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc, f"read {rel.name} from") from None
        finally:
            engine.dispose()


def _bookkeeping(name: str) -> bool:
    return name.startswith("_aggregator_") or name.endswith(("__staging", "__quarantine"))


def _batch(rows: Sequence[Any], schema: pa.Schema) -> tuple[pa.RecordBatch, dict[int, str]]:
    """Rows -> one record batch, column by column; rows with misfit values in ``bad``."""
    bad: dict[int, str] = {}
    columns = list(zip(*rows, strict=True))
    arrays = [to_arrow(columns[i], f.type, bad, f.name) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema), bad


def _quarantined(
    rel: _Relation, rows: Sequence[Any], batch: pa.RecordBatch, bad: dict[int, str], ordinal: int
) -> Quarantined:
    keys = [k for k in rel.primary_key if k in batch.schema.names]
    raw = pa.RecordBatch.from_arrays(
        [
            pa.array([None if v is None else str(v) for v in col], pa.string())
            for col in zip(*rows, strict=True)
        ],
        names=batch.schema.names,
    )
    positions: list[str | None] = []
    for row in sorted(bad):
        where = ", ".join(f"{k}={rows[row][batch.schema.get_field_index(k)]!r}" for k in keys)
        positions.append(f"{rel.name}:{where or f'row {ordinal + row + 1}'}")
    return Quarantined.of(
        [bad[r] for r in sorted(bad)], positions, [row_json(raw, r) for r in sorted(bad)]
    )


def _stream(rel: _Relation) -> Stream:
    return table_stream(
        rel.name,
        rel.schema,
        rel.primary_key,
        {"kind": rel.kind, "declared_types": rel.declared},
    )


def _from_state(value: Any, dtype: pa.DataType) -> Any:
    """A saved cursor/key value back in the Python type the driver compares correctly."""
    if value is None or not isinstance(value, str):
        return value
    if pa.types.is_timestamp(dtype):
        moment = dt.datetime.fromisoformat(value)
        if dtype.tz is None and moment.tzinfo is not None:
            moment = moment.replace(tzinfo=None)
        return moment
    if pa.types.is_date(dtype):
        return dt.date.fromisoformat(value)
    if pa.types.is_decimal(dtype):
        return decimal.Decimal(value)
    if pa.types.is_integer(dtype):
        return int(value)
    return value
