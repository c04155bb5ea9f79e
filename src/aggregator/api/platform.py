"""Everything a request handler needs, built once per application (never at import time)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aggregator.metadata.store import MetadataStore
from aggregator.security import crypto, tokens
from aggregator.security.principal_cache import PrincipalCache
from aggregator.security.ratelimit import RateLimiter, make_limiter
from aggregator.settings import Settings


@dataclass
class Platform:
    """Settings, the metadata store, the secret box, the rate limiter and the run executor."""

    settings: Settings
    store: MetadataStore
    box: crypto.SecretBox
    limiter: RateLimiter
    jwt_key: str
    runs: ThreadPoolExecutor
    running: dict[str, str] = field(default_factory=dict)  # pipeline name -> run id
    lock: threading.Lock = field(default_factory=threading.Lock)
    oidc: Any = None  # OidcClient, created at first use
    webhooks: Any = None  # services.webhooks.WebhookDispatcher, set by create_app
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(0))

    @classmethod
    def build(cls, settings: Settings, store: MetadataStore | None = None) -> Platform:
        """Connect to the metadata store (migrating it) and load keys."""
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        return cls(
            settings=settings,
            store=store or MetadataStore(settings.metadata_database_url()),
            box=crypto.load_box(settings),
            limiter=make_limiter(settings.redis_url),
            jwt_key=tokens.signing_key(secret, str(settings.home / "jwt.key")),
            runs=ThreadPoolExecutor(settings.api_run_workers, thread_name_prefix="api-run"),
            principals=PrincipalCache(settings.auth_cache_seconds),
        )

    def close(self) -> None:
        """Wait for running pipelines, then release connections."""
        self.runs.shutdown(wait=True)
        self.store.engine.dispose()
