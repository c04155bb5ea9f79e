"""Declarative transform steps of a stream (the ``transforms:`` list of the pipeline spec).

Each step is a mapping with ``step: <kind>``; see ``docs/transforms.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aggregator.core.types import type_from_string

OnError = Literal["quarantine", "fail"]
OnDrop = Literal["quarantine", "drop"]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_error: OnError = Field(
        "quarantine", description="Rows the step fails on: quarantine them or fail the run."
    )


def _check_types(value: dict[str, str]) -> dict[str, str]:
    for column, type_name in value.items():
        try:
            type_from_string(type_name)
        except ValueError as exc:
            raise ValueError(f"column {column!r}: {exc}") from exc
    return value


class SelectStep(_Step):
    """Keep only these columns, in this order."""

    step: Literal["select"]
    columns: list[str] = Field(min_length=1)


class DropStep(_Step):
    """Remove columns."""

    step: Literal["drop"]
    columns: list[str] = Field(min_length=1)


class RenameStep(_Step):
    """Rename columns: ``{old: new}``."""

    step: Literal["rename"]
    columns: dict[str, str] = Field(min_length=1)


class CastStep(_Step):
    """Cast columns to type names; values that do not cast are quarantined with the value."""

    step: Literal["cast"]
    columns: dict[str, str] = Field(min_length=1)
    _types = field_validator("columns")(_check_types)


class DeriveStep(_Step):
    """Add (or replace) ``column`` with an SQL expression over the row."""

    step: Literal["derive"]
    column: str
    expr: str


class FilterStep(_Step):
    """Keep rows where the SQL predicate ``where`` is true; others are dropped per ``on_drop``."""

    step: Literal["filter"]
    where: str
    on_drop: OnDrop = "quarantine"


class DeduplicateStep(_Step):
    """Keep one row per ``key`` (first or last by ``order_by``, else by arrival)."""

    step: Literal["deduplicate"]
    key: list[str] = Field(min_length=1)
    keep: Literal["first", "last"] = "first"
    order_by: str | None = None
    on_drop: OnDrop = "quarantine"


class FlattenStep(_Step):
    """Struct and JSON columns become one column per field (``parent<separator>field``)."""

    step: Literal["flatten"]
    columns: list[str] | None = None
    separator: str = "_"


class UnnestStep(_Step):
    """One output row per element of a list column (``outer``: keep rows with empty lists);
    with ``into``, the elements go to a child stream (table) instead, keyed by the parent's
    primary key and ``_index``, and the list column leaves the parent."""

    step: Literal["unnest"]
    column: str
    outer: bool = True
    into: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Child stream (destination table) that receives one row per element.",
    )


class NormalizeNamesStep(_Step):
    """Rename every column to ``snake_case`` (or ``lower``)."""

    step: Literal["normalize_names"]
    style: Literal["snake_case", "lower"] = "snake_case"


class MapValuesStep(_Step):
    """Replace values of ``column`` through ``mapping``; unmapped values kept or set to default."""

    step: Literal["map_values"]
    column: str
    mapping: dict[str, Any] = Field(min_length=1)
    default: Any = None
    keep_unmapped: bool = True


class LookupStep(_Step):
    """Left-join columns from a reference table (destination DuckDB) or file, on ``on``."""

    step: Literal["lookup"]
    table: str | None = None
    file: str | None = None
    on: dict[str, str] = Field(min_length=1, description="stream column -> reference column")
    columns: list[str] = Field(min_length=1)
    prefix: str = ""
    on_missing: Literal["keep", "quarantine", "fail"] = "keep"

    @model_validator(mode="after")
    def _one_reference(self) -> LookupStep:
        if (self.table is None) == (self.file is None):
            raise ValueError("lookup needs exactly one of table or file")
        return self


class TrimStep(_Step):
    """Trim whitespace (or ``chars``) from both ends of string columns."""

    step: Literal["trim"]
    columns: list[str] = Field(min_length=1)
    chars: str | None = None


class CaseStep(_Step):
    """Change the case of string columns."""

    step: Literal["case"]
    columns: list[str] = Field(min_length=1)
    to: Literal["lower", "upper", "title"]


class RegexReplaceStep(_Step):
    """Replace matches of ``pattern`` (RE2 syntax) with ``replacement`` (``\\1`` groups)."""

    step: Literal["regex_replace"]
    columns: list[str] = Field(min_length=1)
    pattern: str
    replacement: str = ""


class NullIfStep(_Step):
    """Set values equal to one of ``values`` to null."""

    step: Literal["null_if"]
    columns: list[str] = Field(min_length=1)
    values: list[Any] = Field(min_length=1)


class FillNullStep(_Step):
    """Replace nulls: ``{column: value}``."""

    step: Literal["fill_null"]
    columns: dict[str, Any] = Field(min_length=1)


class ParseDateStep(_Step):
    """Parse text with an explicit strptime ``format`` into date / timestamp / timestamptz."""

    step: Literal["parse_date"]
    columns: list[str] = Field(min_length=1)
    format: str
    to: Literal["date", "timestamp", "timestamptz"] = "date"


class ParseNumberStep(_Step):
    """Parse text numbers with explicit separators into a numeric type name."""

    step: Literal["parse_number"]
    columns: list[str] = Field(min_length=1)
    to: str = "float64"
    decimal_separator: str = Field(".", min_length=1, max_length=1)
    thousands_separator: str = ""
    _types = field_validator("to")(lambda v: (type_from_string(v), v)[1])


class ProtectStep(_Step):
    """PII protection per column: ``mask``, ``hash`` (salted SHA-256), ``tokenize``, ``drop``."""

    step: Literal["protect"]
    columns: dict[str, Literal["mask", "hash", "tokenize", "drop"]] = Field(min_length=1)
    salt: str | None = Field(None, description="Secret salt, e.g. ${PII_SALT}; hash/tokenize.")
    keep_last: int = Field(4, ge=0, description="mask: characters left visible at the end.")
    mask_char: str = Field("*", min_length=1, max_length=1)

    @model_validator(mode="after")
    def _salted(self) -> ProtectStep:
        needs = sorted(c for c, how in self.columns.items() if how in ("hash", "tokenize"))
        if needs and not self.salt:
            raise ValueError(
                f"hash/tokenize of {', '.join(needs)} needs a non-empty salt "
                "(e.g. salt: ${PII_SALT})"
            )
        return self


class TargetColumn(BaseModel):
    """One column of a ``map_schema`` target."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(None, alias="from", description="Source column (default: same).")
    type: str | None = None
    default: Any = None
    required: bool = False
    _types = field_validator("type")(lambda v: v if v is None else (type_from_string(v), v)[1])


class MapSchemaStep(_Step):
    """Map source columns to a target schema (types, defaults, required flags)."""

    step: Literal["map_schema"]
    columns: dict[str, TargetColumn] = Field(min_length=1)
    unmapped: Literal["drop", "keep", "fail"] = "drop"


class SqlStep(_Step):
    """DuckDB SQL over the batch; the stream is the table named like the stream."""

    step: Literal["sql"]
    query: str
    on_drop: OnDrop = "quarantine"


class PythonStep(_Step):
    """``module:function`` taking and returning a ``pyarrow.RecordBatch`` (``frame: arrow``)
    or a Polars ``DataFrame`` (``frame: polars``, needs the ``polars`` extra)."""

    step: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
    frame: Literal["arrow", "polars"] = "arrow"
    on_drop: OnDrop = "quarantine"


TransformStep = Annotated[
    SelectStep
    | DropStep
    | RenameStep
    | CastStep
    | DeriveStep
    | FilterStep
    | DeduplicateStep
    | FlattenStep
    | UnnestStep
    | NormalizeNamesStep
    | MapValuesStep
    | LookupStep
    | TrimStep
    | CaseStep
    | RegexReplaceStep
    | NullIfStep
    | FillNullStep
    | ParseDateStep
    | ParseNumberStep
    | ProtectStep
    | MapSchemaStep
    | SqlStep
    | PythonStep,
    Field(discriminator="step"),
]
