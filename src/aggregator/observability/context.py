"""Request context for logs: every line logged while a request is served carries its
``request_id`` and, once authenticated, its ``user``.

The gateway middleware binds the request's ASGI ``state`` dict to a context variable;
authentication stores the principal in that same dict. Sync handlers run in worker threads
with a *copy* of the context, so a value bound there would not travel back: sharing the
mutable dict makes the user visible to every line of the request, wherever it is logged.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

_request_state: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "aggregator_request_state", default=None
)


def bind_request(state: MutableMapping[str, Any]) -> Token[MutableMapping[str, Any] | None]:
    """Make ``state`` (holding ``request_id`` and later ``principal``) the current request."""
    return _request_state.set(state)


def unbind_request(token: Token[MutableMapping[str, Any] | None]) -> None:
    """End the request's context."""
    _request_state.reset(token)


def add_request_context(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``request_id`` and ``user`` of the current request."""
    state = _request_state.get()
    if state is None:
        return event_dict
    if "request_id" in state:
        event_dict.setdefault("request_id", state["request_id"])
    principal = state.get("principal")
    actor = getattr(principal, "actor", None)
    if actor:
        event_dict.setdefault("user", actor)
    return event_dict


def add_trace_context(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``trace_id``/``span_id`` of the current OpenTelemetry span."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a dependency
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
