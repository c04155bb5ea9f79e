"""The connector SDK: what a source or destination implements.

A **source** declares a pydantic config model, and implements ``check``, ``discover`` and
``read``. ``read`` yields :mod:`aggregator.core.messages` for one stream, resuming from the
state the destination last committed for it.

A **destination** declares a config model and implements ``check`` and ``open``; ``open``
returns a :class:`DestinationSession` that hands out one :class:`StreamWriter` per stream.
A writer receives batches and quarantined rows and commits them **together with the
stream state** in :meth:`StreamWriter.commit`: after a crash, the destination holds exactly
the data of the last committed state, so a re-run resumes without losing or duplicating
rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from aggregator.core.catalog import Catalog, ConfiguredStream
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Message

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ConnectorConfig(BaseModel):
    """Base for connector config models: unknown keys are errors (typos get caught)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a connection check."""

    ok: bool
    message: str = ""


class Connector(ABC, Generic[ConfigT]):
    """Common base: a name, a kind, a config model and a check."""

    name: ClassVar[str]
    kind: ClassVar[Literal["source", "destination"]]
    config_model: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @classmethod
    def spec(cls) -> dict[str, Any]:
        """JSON Schema of the connector's configuration."""
        return cls.config_model.model_json_schema()

    @classmethod
    def from_config(cls, raw: dict[str, Any], where: str = "config") -> Connector[Any]:
        """Validate ``raw`` against the config model; errors name the field path."""
        try:
            config = cls.config_model.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid {cls.name} configuration: {problems}") from exc
        return cls(config)  # type: ignore[arg-type]

    @abstractmethod
    def check(self) -> CheckResult:
        """Verify that the configuration works (credentials, paths, reachability)."""


class Source(Connector[ConfigT]):
    """A system data is read from."""

    kind: ClassVar[Literal["source", "destination"]] = "source"

    @abstractmethod
    def discover(self) -> Catalog:
        """The streams this source offers, with schemas, keys and cursor candidates."""

    def stream_names(self) -> list[str]:
        """Names of the streams offered; override when that is cheaper than ``discover``."""
        return [s.name for s in self.discover().streams]

    @abstractmethod
    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield messages for ``stream``, resuming after ``state`` when given."""


class StreamWriter(ABC):
    """Writes one stream; nothing is visible to readers before :meth:`commit`."""

    @abstractmethod
    def current_schema(self) -> pa.Schema | None:
        """The schema of the destination table, or ``None`` when it does not exist yet."""

    @abstractmethod
    def apply_schema(self, schema: pa.Schema) -> None:
        """Create the table, or add columns and widen types so it has ``schema``."""

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> None:
        """Stage rows of the current schema, to be made visible at the next commit."""

    @abstractmethod
    def quarantine(self, rows: pa.Table) -> None:
        """Stage quarantined rows (``QUARANTINE_SCHEMA`` plus ``stream``/``run_id``)."""

    @abstractmethod
    def commit(self, state: dict[str, Any] | None) -> None:
        """Atomically make staged rows visible and record ``state`` for the stream."""

    @abstractmethod
    def finish(self, state: dict[str, Any] | None) -> None:
        """End of stream: commit what is staged (``replace`` swaps the new table in)."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything staged since the last commit."""


class ChildTable(ABC):
    """A table written in its parent writer's transactions (a child stream, e.g. ``unnest``
    with ``into``): what it stages commits with the parent's rows and state.

    It follows the parent's write mode: ``replace`` writes ``<name>__staging`` and
    :meth:`finish` swaps it in; otherwise rows go to ``<name>`` directly. A destination
    supplies the SQL primitives (the ``_`` methods); the bookkeeping is here.
    """

    def __init__(self, name: str, replace: bool) -> None:
        self.name = name
        self.replace = replace
        #: the table rows go to this run
        self.table = f"{name}__staging" if replace else name
        self._schema: pa.Schema | None = None
        self._loaded = replace  # replace builds a new table: nothing to load

    def current_schema(self) -> pa.Schema | None:
        """The schema of the table written (``replace``: as created this run), or ``None``."""
        if not self._loaded:
            self._schema = self._stored_schema()
            self._loaded = True
        return self._schema

    def apply_schema(self, schema: pa.Schema) -> None:
        """Create the table, or add columns and widen types so it has ``schema``; outside
        ``replace`` the schema is recorded."""
        self._shape(self.current_schema(), schema)
        self._schema = schema
        if not self.replace:
            self._record_schema(schema)

    def write(self, rows: pa.Table) -> None:
        """Stage ``rows`` (of the current schema)."""
        if rows.num_rows:
            self._insert(rows)

    def delete_parents(self, keys: pa.Table) -> None:
        """Stage the deletion of every row whose ``keys.column_names`` match a row of
        ``keys`` (the children of those parents); nothing when the table does not exist."""
        if keys.num_rows and self.current_schema() is not None:
            self._delete(keys)

    def finish(self) -> None:
        """``replace``: swap the staging table in (or empty the table when nothing was
        written this run), in the transaction the parent's ``finish`` commits."""
        if not self.replace:
            return
        if self._schema is not None:
            self._swap(self._schema)
        elif self._stored_schema() is not None:
            self._empty()

    @abstractmethod
    def _stored_schema(self) -> pa.Schema | None:
        """The recorded schema of ``name``, or ``None`` when it does not exist."""

    @abstractmethod
    def _shape(self, old: pa.Schema | None, new: pa.Schema) -> None:
        """Create or alter ``table`` from ``old`` to ``new``."""

    @abstractmethod
    def _record_schema(self, schema: pa.Schema) -> None:
        """Record ``schema`` as the schema of ``name``."""

    @abstractmethod
    def _insert(self, rows: pa.Table) -> None:
        """Insert ``rows`` (at least one) into ``table``."""

    @abstractmethod
    def _delete(self, keys: pa.Table) -> None:
        """Delete the rows of ``table`` matching ``keys`` (at least one)."""

    @abstractmethod
    def _swap(self, schema: pa.Schema) -> None:
        """Replace ``name`` by the staging table ``table`` of ``schema``."""

    @abstractmethod
    def _empty(self) -> None:
        """Delete every row of ``name``."""


@runtime_checkable
class ChildTableWriter(Protocol):
    """A :class:`StreamWriter` capability: child tables in the writer's transactions."""

    def child_table(self, name: str) -> ChildTable:
        """The child table ``name``, written with this writer's mode and transactions."""
        ...


class DestinationSession(ABC):
    """An open destination for one pipeline run."""

    @abstractmethod
    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last committed for ``stream`` by this pipeline."""

    @abstractmethod
    def reset_state(self, stream: str | None = None) -> None:
        """Forget the state of ``stream`` (or of all streams)."""

    @abstractmethod
    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer for ``stream`` in this run."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and locks."""

    def __enter__(self) -> DestinationSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Destination(Connector[ConfigT]):
    """A system data is written to."""

    kind: ClassVar[Literal["source", "destination"]] = "destination"

    @abstractmethod
    def open(self, pipeline: str) -> DestinationSession:
        """Open the destination for ``pipeline`` (state is kept per pipeline and stream)."""
