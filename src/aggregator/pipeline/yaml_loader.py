"""YAML loading that remembers where each value came from, and ``${VAR}`` interpolation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from aggregator.core.errors import SpecError

Location = tuple[str | int, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _ in node.value:
        lines[loader.construct_object(key_node, deep=True)] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class LoadedYaml:
    """A parsed YAML document plus a map from field paths to line numbers."""

    def __init__(self, data: Any, lines: dict[Location, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def where(self, loc: Location) -> str:
        """``file:line`` of the closest known ancestor of ``loc``."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return f"{self.source}:{self.lines[path]}"
            path = path[:-1]
        return self.source


def _strip(node: Any, loc: Location, lines: dict[Location, int]) -> Any:
    if isinstance(node, dict):
        key_lines = node.pop("__lines__", {})
        lines.setdefault(loc, node.pop("__line__", 1))
        out = {}
        for key, value in node.items():
            lines[(*loc, key)] = key_lines.get(key, lines[loc])
            out[key] = _strip(value, (*loc, key), lines)
        return out
    if isinstance(node, list):
        result = []
        for i, item in enumerate(node):
            # a mapping item records its own line; other items take the list's line
            if loc in lines and not isinstance(item, dict):
                lines.setdefault((*loc, i), lines[loc])
            result.append(_strip(item, (*loc, i), lines))
        return result
    return node


def interpolate(
    node: Any, where: LoadedYaml, loc: Location = (), extra: dict[str, str] | None = None
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values.

    Values come from ``extra`` first, then the environment.
    """
    extra = extra or {}
    if isinstance(node, dict):
        return {k: interpolate(v, where, (*loc, k), extra) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, where, (*loc, i), extra) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = extra.get(name, os.environ.get(name, default))
        if value is None:
            dotted = ".".join(str(p) for p in loc)
            hint = f"use ${{{name}:-default}} for a default"
            raise SpecError(
                where.source,
                [f"{where.where(loc)}: {dotted}: environment variable {name} is not set ({hint})"],
            )
        return value

    return _VAR.sub(replace, node)


def load_yaml(path: Path) -> LoadedYaml:
    """Parse ``path``; syntax errors become :class:`SpecError` with the line."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(source, [f"{source}: file not found"]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(source, [f"{source}: not UTF-8 text: {exc}"]) from exc
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise SpecError(source, [f"{where}: YAML syntax: {getattr(exc, 'problem', exc)}"]) from exc
    lines: dict[Location, int] = {}
    data = _strip(raw, (), lines)
    return LoadedYaml(data, lines, source)
