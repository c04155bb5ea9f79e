"""A logging filter that masks registered secrets in standard-library log records.

HTTP client libraries (httpx, httpcore) log request URLs, query-string credentials
included; connectors register the secrets they send with :data:`HTTP_REDACTOR`, which is
installed on those loggers at import, so a secret never reaches a handler even when a user
turns their level down to INFO or DEBUG.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

MASK = "***"
HTTP_LOGGERS = ("httpx", "httpcore")


class SecretRedactor(logging.Filter):
    """Replaces every registered secret (as is and URL-encoded) by :data:`MASK`."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (empty strings are ignored)."""
        if secret:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def mask(self, text: str) -> str:
        """``text`` with every registered secret masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message when it contains a secret; never drops a record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


HTTP_REDACTOR = SecretRedactor()
for _name in HTTP_LOGGERS:
    logging.getLogger(_name).addFilter(HTTP_REDACTOR)
