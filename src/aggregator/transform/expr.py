"""SQL expressions of steps and checks: parsed once with sqlglot, transpiled to DuckDB."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from aggregator.core.errors import ConfigError

DIALECT = "duckdb"


@dataclass(frozen=True)
class ColumnRef:
    """A column named in an expression, with its 1-based line and column in the text."""

    name: str
    line: int
    col: int


@dataclass(frozen=True)
class Expression:
    """A parsed expression: the user's text, the sqlglot tree and the DuckDB SQL."""

    text: str
    tree: exp.Expr
    sql: str
    columns: tuple[ColumnRef, ...]


def parse_expression(text: str, what: str, *, statement: bool = False) -> Expression:
    """Parse ``text``; a syntax error raises :class:`ConfigError` naming ``what`` and where."""
    try:
        tree = sqlglot.parse_one(text, read=DIALECT)
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f"line {first.get('line', '?')}, column {first.get('col', '?')}"
        detail = str(first.get("description", exc)).split("\n")[0]
        detail = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", detail)  # sqlglot's class names
        raise ConfigError(f"{what}: syntax error at {where} of {text!r}: {detail}") from exc
    except TokenError as exc:
        raise ConfigError(f"{what}: syntax error in {text!r}: {exc}") from exc
    if tree is None:
        raise ConfigError(f"{what}: empty expression")
    if not statement and isinstance(tree, exp.Query):
        raise ConfigError(f"{what}: expected an expression, got a query: {text!r}")
    refs: list[ColumnRef] = []
    if not statement:
        for column in tree.find_all(exp.Column):
            meta = column.this.meta if isinstance(column.this, exp.Identifier) else {}
            start = int(meta.get("start", 0))
            line = text.count("\n", 0, start) + 1
            refs.append(ColumnRef(column.name, line, start - text.rfind("\n", 0, start)))
    return Expression(text, tree, tree.sql(dialect=DIALECT), tuple(refs))


def check_columns(expr: Expression, available: Iterable[str], what: str) -> None:
    """Raise :class:`ConfigError` naming the first unknown column and its position."""
    names = set(available)
    for ref in expr.columns:
        if ref.name not in names:
            shown = ", ".join(sorted(n for n in names if not n.startswith("__agg")))
            raise ConfigError(
                f"{what}: unknown column {ref.name!r} at line {ref.line}, column {ref.col} "
                f"of {expr.text!r}; columns: {shown}"
            )


def quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'
