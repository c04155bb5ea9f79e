"""Platform settings from ``AGGREGATOR_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings; create with :func:`load_settings`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="AGGREGATOR_", extra="ignore")

    home: Path = Field(Path(".aggregator"), description="Directory for local metadata and logs.")
    metadata_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata store; default SQLite in `home`."
    )
    log_level: str = Field("warning", description="debug, info, warning or error.")
    log_format: str = Field("console", description="console or json (stderr).")

    def metadata_database_url(self) -> str:
        """The metadata store URL, defaulting to ``sqlite:///<home>/metadata.db``."""
        if self.metadata_url:
            return self.metadata_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'metadata.db'}"


def load_settings() -> Settings:
    """Read settings from the environment."""
    return Settings()
