"""Structured logging (structlog) to stderr, as console lines or JSON lines."""

from __future__ import annotations

import logging
import sys

import structlog

from aggregator.observability.context import add_request_context, add_trace_context

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """A logger on the *current* ``sys.stderr`` (tests and embedders may swap it)."""
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "warning", fmt: str = "console") -> None:
    """Send structlog events at ``level`` and above to stderr, as ``console`` or ``json``."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_context,  # request_id and user of the request being served
            add_trace_context,  # OpenTelemetry trace_id / span_id when tracing
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level.lower(), 30)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=_LEVELS.get(level.lower(), 30), stream=sys.stderr)
    # HTTP clients log full request URLs (query-string credentials included) at INFO
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, _LEVELS.get(level.lower(), 30)))
