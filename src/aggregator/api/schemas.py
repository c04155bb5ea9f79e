"""Request and response bodies (``XCreate``, ``XUpdate``, ``XPublic``); never DB models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from aggregator.security.rbac import Permission


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC, so say so (RFC 3339)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectorPublic(BaseModel):
    """An installed connector and its configuration JSON Schema."""

    name: str
    kind: str
    package: str
    description: str
    config_schema: dict[str, Any]


class ConnectionCreate(_In):
    """A new connection; secrets in ``config`` are encrypted at rest and never returned."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    connector: str = Field(min_length=1, max_length=100)
    kind: Literal["source", "destination"]
    config: dict[str, Any] = Field(default_factory=dict)


class ConnectionUpdate(_In):
    """Changes; a secret sent back as ``**********`` keeps its stored value."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    config: dict[str, Any] | None = None


class ConnectionPublic(BaseModel):
    """A connection with its secrets redacted."""

    id: str
    name: str
    connector: str
    kind: str
    config: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp


class CheckPublic(BaseModel):
    """Outcome of a connection check."""

    ok: bool
    message: str


class PipelineWrite(_In):
    """A pipeline spec as JSON (``spec``) or YAML text (``yaml``); exactly one of them.

    A source or the destination may name a stored connection (``connection: NAME``)
    instead of ``type`` and ``config``; secrets then stay encrypted in the connection.
    """

    spec: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=512_000)

    @model_validator(mode="after")
    def _one(self) -> PipelineWrite:
        if (self.spec is None) == (self.yaml is None):
            raise ValueError("give exactly one of `spec` or `yaml`")
        return self


class PipelinePublic(BaseModel):
    """A pipeline at its current version."""

    id: str
    name: str
    version: int
    spec: dict[str, Any]
    created_by: str | None
    created_at: Timestamp
    updated_at: Timestamp


class PipelineVersionPublic(BaseModel):
    """One version of a pipeline: what changed, who and when."""

    version: int
    change: str
    author_id: str | None
    created_at: Timestamp
    spec: dict[str, Any]
    source_format: str
    source_text: str


class RunCreate(_In):
    """How to run a pipeline."""

    full_refresh: bool = False
    streams: list[str] | None = None


class StreamMetrics(BaseModel):
    """Per-stream outcome of a run."""

    name: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    bytes: int
    seconds: float
    rows_per_second: float
    error: str | None


class RunPublic(BaseModel):
    """A run and its streams."""

    run_id: str
    pipeline: str
    status: str
    started_at: Timestamp
    finished_at: Timestamp | None
    seconds: float
    full_refresh: bool
    error: str | None
    streams: list[StreamMetrics]


class RunAccepted(BaseModel):
    """A triggered run."""

    run_id: str
    status: str


class LoginRequest(_In):
    """Email and password."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class PasswordChange(_In):
    """The current password and the new one."""

    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class RefreshRequest(_In):
    """A refresh token (or none: the refresh cookie is used, with CSRF)."""

    refresh_token: str | None = Field(None, max_length=200)


class TokenPair(BaseModel):
    """Tokens issued at login and refresh."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    csrf_token: str


class MfaChallenge(BaseModel):
    """The password was right; send a TOTP or recovery code with this token."""

    mfa_required: bool = True
    mfa_token: str


class MfaVerify(_In):
    """The second factor."""

    mfa_token: str = Field(max_length=1000)
    code: str = Field(min_length=6, max_length=40)


class MfaCode(_In):
    """A TOTP code."""

    code: str = Field(min_length=6, max_length=10)


class MfaSetup(BaseModel):
    """A new TOTP secret, for an authenticator app."""

    secret: str
    otpauth_uri: str


class RecoveryCodes(BaseModel):
    """One-time recovery codes, shown once."""

    recovery_codes: list[str]


class UserCreate(_In):
    """A new local user."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=256)
    role: Literal["admin", "editor", "operator", "viewer"]
    display_name: str = Field("", max_length=200)


class UserUpdate(_In):
    """Changes to a user."""

    role: Literal["admin", "editor", "operator", "viewer"] | None = None
    is_active: bool | None = None
    display_name: str | None = Field(None, max_length=200)


class UserPublic(BaseModel):
    """A user, without credentials."""

    id: str
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: Timestamp


class MePublic(UserPublic):
    """The caller and what they may do."""

    permissions: list[str]
    auth: str


class RolePublic(BaseModel):
    """A role and its permissions."""

    name: str
    description: str
    permissions: list[str]


class ApiKeyCreate(_In):
    """A new API key; ``scopes`` default to the owner's permissions."""

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Permission] | None = None
    expires_at: datetime | None = None


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    id: str
    name: str
    prefix: str
    user_id: str
    scopes: list[str]
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None


class ApiKeyCreated(ApiKeyPublic):
    """A new key: the only time the secret is shown."""

    key: str


class AuditEventPublic(BaseModel):
    """An audit log entry."""

    seq: int
    at: Timestamp
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    ip: str | None
    request_id: str | None
    details: dict[str, Any]
    hash: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)
