"""Configuration of the ``webhook`` source."""

from __future__ import annotations

from pydantic import Field, SecretStr

from aggregator.connectors.sdk import ConnectorConfig


class WebhookConfig(ConnectorConfig):
    """Reads the events that ingest streams received (``POST /api/v1/ingest/{id}``)."""

    metadata_url: SecretStr | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the metadata database the API stores events in "
            "(default: the one configured by AGGREGATOR_METADATA_URL / AGGREGATOR_HOME)."
        ),
    )
    workspace: str = Field("default", description="Workspace owning the ingest streams.")
    streams: list[str] | None = Field(
        None, description="Ingest stream names to offer (default: every one of the workspace)."
    )
    batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Events per Arrow batch.")
