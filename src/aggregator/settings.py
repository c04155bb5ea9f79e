"""Platform settings from ``AGGREGATOR_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that are never accepted as secrets outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "changeme", "secret", "admin"})


class Settings(BaseSettings):
    """Settings; create with :func:`load_settings`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="AGGREGATOR_", extra="ignore")

    home: Path = Field(Path(".aggregator"), description="Directory for local metadata and logs.")
    metadata_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata store; default SQLite in `home`."
    )
    log_level: str = Field("warning", description="debug, info, warning or error.")
    log_format: str = Field("console", description="console or json (stderr).")

    # --- control plane (API, identity, secrets); see docs/security.md ---
    environment: Literal["development", "production"] = Field(
        "development", description="production refuses default or empty secrets."
    )
    secret_key: SecretStr | None = Field(
        None, description="JWT signing key (>= 32 chars); development generates one in `home`."
    )
    encryption_key: SecretStr | None = Field(
        None, description="AES-256-GCM key for secrets at rest: 32 bytes, base64."
    )
    encryption_key_file: Path | None = Field(
        None, description="File holding the encryption key (base64); used when no key is set."
    )
    access_token_minutes: int = Field(15, ge=1, le=1440, description="Access token lifetime.")
    refresh_token_days: int = Field(14, ge=1, le=365, description="Session lifetime.")
    cookie_secure: bool = Field(True, description="Mark auth cookies Secure (HTTPS only).")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list)."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    redis_url: str | None = Field(None, description="Redis for rate limits; memory otherwise.")
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per principal or IP.")
    auth_cache_seconds: float = Field(
        2.0, ge=0, le=60, description="How long a worker trusts a checked session (0: never)."
    )
    login_attempts_per_window: int = Field(
        5, ge=1, description="Failed logins per account and per IP in 15 minutes."
    )
    trust_forwarded_for: bool = Field(
        False, description="Use X-Forwarded-For as the client IP (behind a trusted proxy)."
    )
    require_admin_mfa: bool = Field(
        True, description="Admins get no permissions until they have set up TOTP MFA."
    )
    oidc_issuer: str | None = Field(None, description="OpenID Connect issuer URL (enables SSO).")
    oidc_client_id: str | None = Field(None, description="OIDC client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(None, description="OIDC client secret.")
    oidc_redirect_uri: str | None = Field(
        None, description="This API's callback: https://<host>/api/v1/auth/oidc/callback."
    )
    oidc_allow_signup: bool = Field(
        False, description="Create unknown (verified-email) users at first OIDC login."
    )
    oidc_default_role: Literal["admin", "editor", "operator", "viewer"] = Field(
        "viewer", description="Role of users created by OIDC signup."
    )
    api_run_workers: int = Field(2, ge=1, le=64, description="Runs executed at once by the API.")
    # --- outbound guard, webhooks, Vault, tracing; see docs/security.md ---
    outbound_strict: bool = Field(
        False, description="Also refuse loopback/private addresses (shared deployments)."
    )
    outbound_allow: list[str] = Field(
        default_factory=list, description="CIDR blocks or host names strict mode allows (JSON)."
    )
    data_dirs: list[Path] = Field(
        default_factory=list,
        description="Directories file-based connections made through the API must stay in.",
    )
    webhook_attempts: int = Field(6, ge=1, le=20, description="Delivery attempts per event.")
    webhook_backoff_seconds: float = Field(
        2.0, ge=0, description="First retry delay (doubles each attempt, capped at 5 min)."
    )
    vault_url: str | None = Field(None, description="HashiCorp Vault / OpenBao address.")
    vault_token: SecretStr | None = Field(None, description="Vault token (or VAULT_TOKEN).")
    vault_transit_mount: str = Field("transit", description="Mount path of the transit engine.")
    vault_transit_key: str = Field("aggregator", description="Transit key name.")
    vault_namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="OpenTelemetry span exporter (otlp needs the otlp extra)."
    )
    otel_service_name: str = Field("aggregator", description="service.name of the spans.")

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if key.lower() in PLACEHOLDER_SECRETS or len(key) < 32:
            raise ValueError(
                "AGGREGATOR_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.encryption_key is None and self.encryption_key_file is None:
            raise ValueError(
                "set AGGREGATOR_ENCRYPTION_KEY or AGGREGATOR_ENCRYPTION_KEY_FILE in production "
                "(`aggregator secrets generate-key` prints a new key)"
            )
        return self

    def metadata_database_url(self) -> str:
        """The metadata store URL, defaulting to ``sqlite:///<home>/metadata.db``."""
        if self.metadata_url:
            return self.metadata_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.home / 'metadata.db'}"


def load_settings() -> Settings:
    """Read settings from the environment."""
    return Settings()
