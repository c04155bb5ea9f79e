"""Errors that say whose fault it is and what to do next.

Exception tree::

    AggregatorError
    ├── ConfigError          the user's configuration is wrong: fix it (exit code 2)
    │   └── SpecError        a pipeline file failed validation (names file and field path)
    ├── ConnectorError       a connector failed while talking to its system
    │   └── TransientError   a retry may succeed (network, locks, rate limits)
    ├── SchemaPolicyError    incoming data broke the stream's schema policy (e.g. ``freeze``)
    └── RunError             a run failed; carries the per-stream cause
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base class: ``message`` is for the user, ``detail`` is for logs."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigError(AggregatorError):
    """The configuration is invalid. Fix the named field and run again."""


class SpecError(ConfigError):
    """A pipeline spec failed validation.

    ``problems`` are lines of the form ``file:line: field.path: what was expected``.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"invalid pipeline spec {source}\n" + "\n".join(problems))
        self.source = source
        self.problems = problems


class ConnectorError(AggregatorError):
    """A connector could not complete an operation against its system."""


class TransientError(ConnectorError):
    """A failure that may succeed when retried."""


class SchemaPolicyError(AggregatorError):
    """Incoming data does not fit the stream's schema under the configured policy."""


class RunError(AggregatorError):
    """A pipeline run failed."""
