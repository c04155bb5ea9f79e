"""The pipeline spec: a YAML file validated by pydantic, with errors that name file:line and field.

Example::

    name: shop
    sources:
      - name: shop_files
        type: files
        config:
          streams:
            - {name: orders, path: "${PIPELINE_DIR}/data/orders.csv"}
        streams:
          - {name: orders, cursor_field: updated_at, primary_key: [order_id]}
    destination:
      type: duckdb
      config: {path: warehouse.duckdb}

See ``docs/pipelines.md`` for every key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aggregator.connectors import registry
from aggregator.core.catalog import ConfiguredStream, SchemaPolicy, SyncMode, WriteMode
from aggregator.core.errors import ConfigError, SpecError
from aggregator.core.types import type_from_string
from aggregator.pipeline.yaml_loader import LoadedYaml, interpolate, load_yaml
from aggregator.quality.config import AnomalySpec, Check
from aggregator.transform.config import TransformStep

_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamSpec(_Strict):
    """How one stream is read and written."""

    name: str = Field(description="Stream name as the source calls it.")
    sync_mode: SyncMode | None = Field(
        None, description="full_refresh or incremental; incremental when cursor_field is set."
    )
    cursor_field: str | None = Field(None, description="Column whose growth marks new rows.")
    primary_key: list[str] | None = Field(None, description="Key columns; needed for merge.")
    write_mode: WriteMode | None = Field(
        None,
        description="append, replace or merge. Default: replace for full_refresh, merge for "
        "incremental with a primary key, append otherwise.",
    )
    schema_policy: SchemaPolicy | None = Field(None, description="Overrides the pipeline policy.")
    table: str | None = Field(None, description="Destination table (default: the stream name).")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Declared column types, e.g. amount: decimal(12,2) (quote it inside {...}).",
    )
    transforms: list[TransformStep] = Field(
        default_factory=list, description="Transform steps applied in order (docs/transforms.md)."
    )
    checks: list[Check] = Field(
        default_factory=list, description="Data contracts: row checks and stream checks."
    )
    profile: bool = Field(False, description="Profile every column and store it with the run.")
    anomalies: AnomalySpec | None = Field(
        None, description="Flag metrics that deviate from the stream's run history."
    )

    @property
    def has_processing(self) -> bool:
        """Whether the stream has steps, checks, profiling or anomaly detection."""
        return bool(self.transforms or self.checks or self.profile or self.anomalies)

    @field_validator("columns")
    @classmethod
    def _types_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for column, type_name in value.items():
            try:
                type_from_string(type_name)
            except ValueError as exc:
                raise ValueError(f"column {column!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StreamSpec:
        if self.write_mode is WriteMode.MERGE and not self.primary_key:
            raise ValueError("write_mode merge needs primary_key")
        return self


class SourceSpec(_Strict):
    """A source connector instance and the streams taken from it."""

    name: str = Field(pattern=_NAME, description="A name for this source in the pipeline.")
    type: str = Field(description="Connector name, see `aggregator connectors list`.")
    config: dict[str, Any] = Field(default_factory=dict, description="Connector configuration.")
    streams: list[StreamSpec] | None = Field(
        None, description="Streams to sync; default: every stream the source discovers."
    )


class DestinationSpec(_Strict):
    """Where the data goes."""

    type: str = Field("duckdb", description="Destination connector name.")
    config: dict[str, Any] = Field(default_factory=dict, description="Connector configuration.")


class EngineSpec(_Strict):
    """How the local engine runs the streams."""

    concurrency: int = Field(4, ge=1, le=64, description="Streams run at the same time.")
    batch_size: int = Field(65_536, ge=1, description="Rows per Arrow record batch.")
    queue_size: int = Field(4, ge=1, description="Batches buffered between source and writer.")


class PipelineSpec(_Strict):
    """A whole pipeline."""

    version: Literal[1] = 1
    name: str = Field(pattern=_NAME, description="Pipeline name; state is kept per pipeline.")
    description: str = ""
    sources: list[SourceSpec] = Field(min_length=1)
    destination: DestinationSpec = Field(default_factory=DestinationSpec)
    schema_policy: SchemaPolicy = SchemaPolicy.EVOLVE
    engine: EngineSpec = Field(default_factory=EngineSpec)

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineSpec:
        seen: dict[str, str] = {}
        for source in self.sources:
            if source.name in seen.values():
                raise ValueError(f"two sources are named {source.name!r}")
            for stream in source.streams or []:
                table = stream.table or stream.name
                if table in seen:
                    raise ValueError(
                        f"table {table!r} is written by {seen[table]!r} and {source.name!r}; "
                        "set `table` on one of the streams"
                    )
                seen[table] = source.name
        return self

    def stream_spec(self, name: str) -> StreamSpec | None:
        """The declared spec of stream ``name`` (None when it is only discovered)."""
        for source in self.sources:
            for stream in source.streams or []:
                if stream.name == name:
                    return stream
        return None

    def configured_streams(self, source: SourceSpec, names: list[str]) -> list[ConfiguredStream]:
        """Resolve defaults for the streams ``names`` of ``source``."""
        declared = {s.name: s for s in source.streams or []}
        return [self._configure(declared.get(n) or StreamSpec(name=n)) for n in names]

    def _configure(self, s: StreamSpec) -> ConfiguredStream:
        sync = s.sync_mode or (SyncMode.INCREMENTAL if s.cursor_field else SyncMode.FULL_REFRESH)
        if s.write_mode is not None:
            write = s.write_mode
        elif sync is SyncMode.FULL_REFRESH:
            write = WriteMode.REPLACE
        else:
            write = WriteMode.MERGE if s.primary_key else WriteMode.APPEND
        column_types: dict[str, pa.DataType] = {
            k: type_from_string(v) for k, v in s.columns.items()
        }
        return ConfiguredStream(
            name=s.name,
            sync_mode=sync,
            write_mode=write,
            cursor_field=s.cursor_field,
            primary_key=tuple(s.primary_key or ()),
            schema_policy=s.schema_policy or self.schema_policy,
            destination_table=s.table,
            column_types=column_types,
            batch_size=self.engine.batch_size,
        )


def _describe(error: Any, model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    if error["type"] == "extra_forbidden" and model is not None:
        key = str(loc[-1])
        allowed = _allowed_keys(model, loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
        return f"unknown key {key!r}{hint}"
    return str(error["msg"])


def _allowed_keys(model: type[BaseModel], parent: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in parent:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part)) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return sorted(f.alias or name for name, f in fields.items())


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _problems(
    exc: ValidationError, doc: LoadedYaml, prefix: tuple[Any, ...], model: type[BaseModel]
) -> list[str]:
    out = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = doc.where(_document_path(doc, loc))
        out.append(f"{where}: {dotted}: {_describe(error, model, tuple(error['loc']))}")
    return out


def _document_path(doc: LoadedYaml, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without parts absent from the document (tags of ``step:``/``check:`` unions)."""
    path: tuple[Any, ...] = ()
    for part in loc:
        if (*path, part) in doc.lines or path not in doc.lines:
            path = (*path, part)
    return path


def _expression_problems(spec: PipelineSpec, doc: LoadedYaml) -> list[str]:
    """Syntax errors in SQL expressions of steps and checks, found at load time."""
    with_sql = [
        (i, j, stream)
        for i, source in enumerate(spec.sources)
        for j, stream in enumerate(source.streams or [])
        if stream.transforms or stream.checks
    ]
    if not with_sql:
        return []  # the SQL parser (sqlglot) and the transform modules load only when needed
    from aggregator.transform.expr import parse_expression
    from aggregator.transform.plan import expressions_of

    problems: list[str] = []
    for i, j, stream in with_sql:
        for loc, text, what, statement in expressions_of(stream):
            full = ("sources", i, "streams", j, *loc)
            try:
                parse_expression(text, what, statement=statement)
            except ConfigError as exc:
                dotted = ".".join(map(str, full))
                problems.append(f"{doc.where(full)}: {dotted}: {exc.message}")
    return problems


def parse_pipeline(doc: LoadedYaml) -> PipelineSpec:
    """Validate a loaded document, including each connector's own config model."""
    if not isinstance(doc.data, dict):
        raise SpecError(doc.source, [f"{doc.source}: a pipeline is a YAML mapping"])
    try:
        spec = PipelineSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(doc.source, _problems(exc, doc, (), PipelineSpec)) from exc
    problems: list[str] = []
    checks: list[tuple[tuple[Any, ...], str, str, dict[str, Any]]] = [
        (("sources", i, "config"), "source", s.type, s.config) for i, s in enumerate(spec.sources)
    ]
    checks.append(
        (("destination", "config"), "destination", spec.destination.type, spec.destination.config)
    )
    for loc, kind, type_name, config in checks:
        try:
            cls = registry.get(type_name, kind).cls
        except ConfigError as exc:
            problems.append(
                f"{doc.where((*loc[:-1], 'type'))}: {'.'.join(map(str, loc[:-1]))}"
                f".type: {exc.message}"
            )
            continue
        try:
            cls.config_model.model_validate(config)
        except ValidationError as exc:
            problems += _problems(exc, doc, loc, cls.config_model)
    problems += _expression_problems(spec, doc)
    if problems:
        raise SpecError(doc.source, problems)
    return spec


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Load, interpolate and validate a pipeline file.

    ``${VAR}`` and ``${VAR:-default}`` are read from the environment; ``${PIPELINE_DIR}`` is
    the directory of the pipeline file.
    """
    file = Path(path)
    doc = load_yaml(file)
    doc.data = interpolate(doc.data, doc, extra={"PIPELINE_DIR": str(file.resolve().parent)})
    return parse_pipeline(doc)
