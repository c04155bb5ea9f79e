"""Data contracts of a stream: the ``checks:``, ``profile:`` and ``anomalies:`` spec keys."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aggregator.core.types import type_from_string

Severity = Literal["warn", "quarantine", "fail"]
StreamSeverity = Literal["warn", "fail"]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity = "quarantine"


class TypeCheck(_Check):
    """Values of ``column`` must be (or cast exactly to) ``type``."""

    check: Literal["type"]
    column: str
    type: str
    _types = field_validator("type")(lambda v: (type_from_string(v), v)[1])


class NotNullCheck(_Check):
    """No nulls in ``columns``."""

    check: Literal["not_null"]
    columns: list[str] = Field(min_length=1)


class UniqueCheck(_Check):
    """The combination of ``columns`` is unique within the run."""

    check: Literal["unique"]
    columns: list[str] = Field(min_length=1)


class AcceptedValuesCheck(_Check):
    """Non-null values of ``column`` are in ``values``."""

    check: Literal["accepted_values"]
    column: str
    values: list[Any] = Field(min_length=1)


class RangeCheck(_Check):
    """``min <= column <= max`` (either bound optional)."""

    check: Literal["range"]
    column: str
    min: Any = None
    max: Any = None

    @model_validator(mode="after")
    def _bounded(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("range needs min or max")
        return self


class RegexCheck(_Check):
    """Non-null values of ``column`` fully match ``pattern`` (RE2)."""

    check: Literal["regex"]
    column: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


class LengthCheck(_Check):
    """Text length of ``column`` within ``min``..``max``."""

    check: Literal["length"]
    column: str
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class ReferentialCheck(_Check):
    """Values of ``column`` exist in ``ref_column`` of a destination ``table`` or a ``file``."""

    check: Literal["referential"]
    column: str
    table: str | None = None
    file: str | None = None
    ref_column: str

    @model_validator(mode="after")
    def _one_reference(self) -> ReferentialCheck:
        if (self.table is None) == (self.file is None):
            raise ValueError("referential needs exactly one of table or file")
        return self


class SqlCheck(_Check):
    """An SQL predicate every row must satisfy (null counts as a failure)."""

    check: Literal["sql"]
    expr: str


class _StreamCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: StreamSeverity = "fail"


class RowCountCheck(_StreamCheck):
    """Rows loaded by the run within ``min``..``max``."""

    check: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class FreshnessCheck(_StreamCheck):
    """The newest ``column`` value is at most ``max_age_seconds`` old at the end of the run."""

    check: Literal["freshness"]
    column: str
    max_age_seconds: float = Field(gt=0)


class NullRateCheck(_StreamCheck):
    """Share of nulls in ``column`` at most ``max``."""

    check: Literal["null_rate"]
    column: str
    max: float = Field(ge=0, le=1)


class DistinctRatioCheck(_StreamCheck):
    """Distinct values / non-null rows of ``column`` within ``min``..``max``."""

    check: Literal["distinct_ratio"]
    column: str
    min: float | None = Field(None, ge=0, le=1)
    max: float | None = Field(None, ge=0, le=1)


RowCheck = (
    TypeCheck
    | NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | RangeCheck
    | RegexCheck
    | LengthCheck
    | ReferentialCheck
    | SqlCheck
)
StreamCheck = RowCountCheck | FreshnessCheck | NullRateCheck | DistinctRatioCheck
Check = Annotated[RowCheck | StreamCheck, Field(discriminator="check")]
STREAM_CHECKS = (RowCountCheck, FreshnessCheck, NullRateCheck, DistinctRatioCheck)


Metric = Literal["row_count", "duration", "null_rate", "freshness"]
DEFAULT_METRICS: tuple[Metric, ...] = ("row_count", "duration", "null_rate")


class AnomalySpec(BaseModel):
    """Compare this run's stream metrics with history (median / MAD)."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[Metric] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    min_history: int = Field(5, ge=2, description="Runs needed before anything is flagged.")
    threshold: float = Field(3.5, gt=0, description="Robust z-score that counts as anomalous.")
    severity: StreamSeverity = "warn"
    freshness_column: str | None = None
