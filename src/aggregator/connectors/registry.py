"""Finds connectors through the ``aggregator.connectors`` entry-point group.

Built-in connectors are registered in this package's ``pyproject.toml`` the same way a
third-party package registers its own, so there is one lookup path for all of them. Naming an
entry point ``<kind>.<name>`` (e.g. ``source.postgres``) lets a lookup load just that one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, EntryPoints, entry_points

import structlog

from aggregator.connectors.sdk import Connector, Destination, Source
from aggregator.core.errors import ConfigError

GROUP = "aggregator.connectors"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ConnectorInfo:
    """A registered connector."""

    name: str
    kind: str
    cls: type[Connector]  # type: ignore[type-arg]
    package: str
    description: str


_registered: list[ConnectorInfo] = []


def register(cls: type[Connector]) -> None:  # type: ignore[type-arg]
    """Register a connector class in this process (for embedding and tests)."""
    _registered.append(ConnectorInfo(cls.name, cls.kind, cls, "(registered)", cls.description))
    _entry_point_connectors.cache_clear()


def all_connectors() -> tuple[ConnectorInfo, ...]:
    """Every installed connector, sorted by kind then name."""
    found = list(_entry_point_connectors()) + _registered
    return tuple(sorted(found, key=lambda c: (c.kind, c.name)))


@cache
def _group() -> EntryPoints:
    """The group's entry points, read once per process (a scan reads every installed
    distribution's metadata: tens of milliseconds at each CLI start)."""
    return entry_points(group=GROUP)


@cache
def _entry_point_connectors() -> tuple[ConnectorInfo, ...]:
    found: list[ConnectorInfo] = []
    for ep in _group():
        info = _info(ep)
        if info is not None:
            found.append(info)
    return tuple(found)


def _info(ep: EntryPoint) -> ConnectorInfo | None:
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not hide the others
        log.warning("connector.load_failed", entry_point=ep.name, error=str(exc))
        return None
    if not (isinstance(cls, type) and issubclass(cls, Source | Destination)):
        return None
    package = ep.dist.name if ep.dist is not None else "?"
    return ConnectorInfo(cls.name, cls.kind, cls, package, cls.description)


@cache
def _named(kind: str, name: str) -> ConnectorInfo | None:
    """Fast path: the entry point called ``<kind>.<name>``, loading nothing else."""
    for ep in _group().select(name=f"{kind}.{name}"):
        info = _info(ep)
        if info is not None and info.name == name and info.kind == kind:
            return info
    return None


def get(name: str, kind: str | None = None) -> ConnectorInfo:
    """The connector ``name`` (optionally of ``kind``); a clear error lists the known names."""
    for info in _registered:
        if info.name == name and kind in (None, info.kind):
            return info
    for k in [kind] if kind else ["source", "destination"]:
        found = _named(k, name)
        if found is not None:
            return found
    everything = all_connectors()
    matches = [c for c in everything if c.name == name and (kind is None or c.kind == kind)]
    if not matches:
        known = ", ".join(sorted({c.name for c in everything if kind in (None, c.kind)}))
        what = f"{kind} connector" if kind else "connector"
        raise ConfigError(f"unknown {what} {name!r}; installed: {known}")
    return matches[0]


def source_class(name: str) -> type[Source]:  # type: ignore[type-arg]
    """The source class registered as ``name``."""
    cls = get(name, "source").cls
    assert issubclass(cls, Source)
    return cls


def destination_class(name: str) -> type[Destination]:  # type: ignore[type-arg]
    """The destination class registered as ``name``."""
    cls = get(name, "destination").cls
    assert issubclass(cls, Destination)
    return cls
