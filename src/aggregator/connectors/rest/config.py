"""Configuration of the declarative ``rest`` source (its JSON Schema drives forms and checks)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from aggregator.connectors.sdk import ConnectorConfig

# -- auth ------------------------------------------------------------------------------------


class ApiKeyAuth(ConnectorConfig):
    """An API key sent in a header or a query parameter."""

    type: Literal["api_key"] = "api_key"
    name: str = Field("X-API-Key", description="Header or query parameter name.")
    value: SecretStr = Field(..., description="The key (secret).")
    location: Literal["header", "query"] = Field(
        "header", alias="in", description="header or query."
    )


class BearerAuth(ConnectorConfig):
    """A static bearer token."""

    type: Literal["bearer"] = "bearer"
    token: SecretStr = Field(..., description="The token (secret).")


class BasicAuth(ConnectorConfig):
    """HTTP basic authentication."""

    type: Literal["basic"] = "basic"
    username: str = Field(..., description="User name.")
    password: SecretStr = Field(..., description="Password (secret).")


class OAuth2Auth(ConnectorConfig):
    """OAuth 2.0 client credentials or refresh token grant; the token is cached until expiry."""

    type: Literal["oauth2"] = "oauth2"
    token_url: str = Field(..., description="Token endpoint (absolute or relative to base_url).")
    grant_type: Literal["client_credentials", "refresh_token"] = Field(
        "client_credentials", description="client_credentials or refresh_token."
    )
    client_id: str = Field(..., description="Client id.")
    client_secret: SecretStr = Field(..., description="Client secret (secret).")
    refresh_token: SecretStr | None = Field(
        None, description="Refresh token (refresh_token grant)."
    )
    scopes: list[str] = Field([], description="Scopes requested.")
    expiry_margin_seconds: float = Field(
        30, ge=0, description="Refresh this long before the token expires."
    )

    @model_validator(mode="after")
    def _refresh_token_given(self) -> OAuth2Auth:
        if self.grant_type == "refresh_token" and self.refresh_token is None:
            raise ValueError("refresh_token is required for the refresh_token grant")
        return self


Auth = Annotated[ApiKeyAuth | BearerAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")]

# -- pagination ------------------------------------------------------------------------------


class PaginationType(StrEnum):
    """Pagination styles."""

    NONE = "none"
    PAGE_NUMBER = "page_number"
    OFFSET = "offset"
    CURSOR = "cursor"
    LINK_HEADER = "link_header"
    NEXT_URL = "next_url"


class Pagination(ConnectorConfig):
    """How the next page is requested; the keys used depend on ``type``."""

    type: PaginationType = Field(PaginationType.NONE, description="Pagination style.")
    page_param: str = Field("page", description="page_number: the page parameter.")
    start_page: int = Field(1, description="page_number: number of the first page.")
    page_size_param: str | None = Field(None, description="page_number: page size parameter.")
    page_size: int | None = Field(
        None, ge=1, description="Page size (page_number) or limit (offset)."
    )
    offset_param: str = Field("offset", description="offset: the offset parameter.")
    limit_param: str = Field("limit", description="offset: the limit parameter.")
    total_path: str | None = Field(
        None, description="JMESPath of the total record count (page_number, offset)."
    )
    total_pages_path: str | None = Field(
        None, description="page_number: JMESPath of the total number of pages."
    )
    cursor_path: str | None = Field(
        None, description="cursor: JMESPath of the next cursor/token in the body."
    )
    cursor_param: str = Field(
        "cursor",
        description="cursor: the query parameter, or dotted path in the JSON body, of the token.",
    )
    cursor_in: Literal["query", "body"] = Field(
        "query", description="cursor: send the token in the query or the JSON body (GraphQL)."
    )
    next_url_path: str | None = Field(
        None, description="next_url: JMESPath of the next page URL in the body."
    )
    max_pages: int | None = Field(None, ge=1, description="Stop after this many pages.")

    @model_validator(mode="after")
    def _paths_given(self) -> Pagination:
        if self.type is PaginationType.CURSOR and not self.cursor_path:
            raise ValueError("cursor pagination needs cursor_path")
        if self.type is PaginationType.NEXT_URL and not self.next_url_path:
            raise ValueError("next_url pagination needs next_url_path")
        return self


# -- streams ---------------------------------------------------------------------------------


class Incremental(ConnectorConfig):
    """Incremental sync: the saved maximum of ``cursor_field`` is sent as ``param``."""

    cursor_field: str = Field(..., description="Record field holding the cursor.")
    param: str = Field(..., description="Request parameter that receives the saved cursor.")
    initial_value: str | None = Field(None, description="Value sent on the first run.")


class RestStreamConfig(ConnectorConfig):
    """One stream: an endpoint, its parameters and how to read records from its pages."""

    name: str = Field(..., min_length=1, description="Stream name.")
    path: str = Field(
        ..., description="Path under base_url; {field} placeholders take parent record fields."
    )
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, str] = Field({}, description="Query parameters.")
    headers: dict[str, str] = Field({}, description="Extra headers for this stream.")
    json_body: dict[str, Any] | None = Field(None, description="JSON body (POST).")
    records_path: str | None = Field(
        None, description="JMESPath selecting the records of a page (default: the body)."
    )
    primary_key: list[str] = Field([], description="Primary key fields.")
    pagination: Pagination | None = Field(None, description="Overrides the source pagination.")
    incremental: Incremental | None = Field(None, description="Incremental sync settings.")
    parent: str | None = Field(None, description="Parent stream: one request per parent record.")
    parent_fields: dict[str, str] = Field(
        {}, description="Columns added from the parent record: {column: parent_field}."
    )


class Retry(ConnectorConfig):
    """Retries of timeouts, connection errors, 5xx and 429 responses."""

    attempts: int = Field(5, ge=1, description="Attempts per request.")
    backoff_seconds: float = Field(0.5, ge=0, description="First backoff, doubled each attempt.")
    max_backoff_seconds: float = Field(30, ge=0, description="Longest backoff (and Retry-After).")


class RestConfig(ConnectorConfig):
    """The ``rest`` source: a base URL, shared settings and streams."""

    base_url: str = Field(..., description="Base URL of the API.")
    headers: dict[str, str] = Field({}, description="Headers sent with every request.")
    auth: Auth | None = Field(None, description="Authentication (api_key, bearer, basic, oauth2).")
    pagination: Pagination = Field(
        default_factory=Pagination, description="Default pagination of the streams."
    )
    requests_per_second: float | None = Field(
        None, gt=0, description="Request budget shared by all streams of the source."
    )
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at most.")
    timeout_seconds: float = Field(30, gt=0, description="Timeout of one request.")
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    sample_pages: int = Field(1, ge=1, description="Pages read per stream by discover.")
    checkpoint_seconds: float = Field(
        1.0, ge=0, description="Least time between two mid-stream checkpoints (0: every page)."
    )
    streams: list[RestStreamConfig] = Field(..., min_length=1, description="The streams.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _streams_consistent(self) -> RestConfig:
        names = [s.name for s in self.streams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate stream names: {', '.join(dupes)}")
        for s in self.streams:
            if s.parent is not None and s.parent not in names:
                raise ValueError(f"stream {s.name!r}: unknown parent {s.parent!r}")
            if s.parent == s.name:
                raise ValueError(f"stream {s.name!r} cannot be its own parent")
        return self
