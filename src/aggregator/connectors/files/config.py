"""Configuration of the ``files`` source (the JSON Schema drives the UI forms)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from aggregator.connectors.sdk import ConnectorConfig


class FileFormat(StrEnum):
    """How a file is parsed."""

    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    JSON = "json"
    PARQUET = "parquet"


class Compression(StrEnum):
    """Compression of the files (``infer`` looks at the extension: ``.gz``, ``.zst``)."""

    INFER = "infer"
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


class IncrementalBy(StrEnum):
    """File-level incremental mode."""

    MODIFIED_AT = "modified_at"


class FileStreamConfig(ConnectorConfig):
    """One stream: a file, a glob or an fsspec URL, and how to parse it."""

    name: str = Field(..., min_length=1, description="Stream name (and default table name).")
    path: str = Field(
        ...,
        min_length=1,
        description=(
            "Local path, glob (orders*.csv) or fsspec URL (file://, memory://, s3://...). "
            "Relative paths resolve against the current working directory."
        ),
    )
    format: FileFormat | None = Field(
        None, description="csv, tsv, jsonl, json or parquet; inferred from the extension."
    )
    compression: Compression | None = Field(
        None, description="gzip, zstd or none; inferred from the extension (.gz, .zst) if unset."
    )
    encoding: str = Field(
        "utf-8", description="Text encoding (utf-8, latin-1, cp1252, utf-16...); transcoded."
    )
    delimiter: str | None = Field(
        None, min_length=1, max_length=1, description='Field delimiter (csv ",", tsv tab).'
    )
    quote_char: str = Field('"', min_length=1, max_length=1, description="Quote character.")
    header: bool = Field(True, description="The first row holds the column names.")
    null_values: list[str] = Field([""], description="Texts read as null (CSV/TSV).")
    incremental_by: IncrementalBy | None = Field(
        None,
        description="modified_at: only read files that are new or whose modification time changed.",
    )
    primary_key: list[str] = Field([], description="Primary key columns (reported by discover).")
    checkpoint_rows: int = Field(
        1_000_000, ge=1, description="Emit a resumable checkpoint every this many rows of a file."
    )
    block_size: int = Field(
        1 << 20, ge=1024, description="Bytes parsed at a time (CSV, JSON Lines)."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value


class FilesConfig(ConnectorConfig):
    """The ``files`` source: one entry per stream."""

    streams: list[FileStreamConfig] = Field(
        ..., min_length=1, description="Streams, each reading one file, glob or URL."
    )

    @field_validator("streams")
    @classmethod
    def _unique_names(cls, value: list[FileStreamConfig]) -> list[FileStreamConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate stream names: {', '.join(dupes)}")
        return value
