"""Filters and sort orders of the data preview, compiled to SQL with bound parameters.

A filter is SQL-like text (``amount > 10 and status in ('paid', 'sent')``) parsed with
sqlglot; the tree is accepted only when every node is on a short whitelist: AND, OR, NOT,
parentheses, comparisons of a column with a literal, ``IS [NOT] NULL``, ``IN (literals)``,
``[NOT] LIKE`` / ``ILIKE`` and ``BETWEEN``. Columns must exist in the table; literals
become parameters; the SQL is generated here, never copied from the input. Anything else
(functions, subqueries, column-to-column comparisons, casts) is refused with a message
that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

MAX_FILTER_CHARS = 2_000
MAX_NODES = 300
_COMPARE: dict[type[Any], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "<>": "<>"}


class FilterError(ValueError):
    """The filter or sort cannot be used; the message says why."""


@dataclass
class Compiled:
    """SQL text with placeholders and the values to bind, in order."""

    sql: str
    params: list[Any] = field(default_factory=list)


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


class FilterCompiler:
    """Compiles a filter for one table: ``columns`` are its column names."""

    def __init__(
        self, columns: list[str], placeholder: str, ilike: bool = True, decimals: bool = True
    ) -> None:
        self.columns = columns
        self.placeholder = placeholder
        self.ilike = ilike  # the dialect has ILIKE (SQLite's LIKE is case-insensitive)
        self.decimals = decimals  # the driver binds Decimal (sqlite3 does not)

    def compile(self, text: str) -> Compiled:
        """The WHERE clause (without ``WHERE``) for ``text``."""
        if len(text) > MAX_FILTER_CHARS:
            raise FilterError(f"the filter is longer than {MAX_FILTER_CHARS} characters")
        try:
            statements = sqlglot.parse(text, read="postgres")
        except (ParseError, sqlglot.errors.TokenError) as exc:
            raise FilterError(f"cannot parse the filter: {_first_line(exc)}") from None
        if len(statements) != 1 or statements[0] is None:
            raise FilterError("the filter must be one expression")
        tree = statements[0]
        if sum(1 for _ in tree.walk()) > MAX_NODES:
            raise FilterError(f"the filter has more than {MAX_NODES} parts")
        out = Compiled("")
        out.sql = self._predicate(tree, out.params)
        return out

    def _predicate(self, node: Any, params: list[Any]) -> str:
        handlers: dict[type[Any], Callable[[Any, list[Any]], str]] = {
            exp.And: self._and_or,
            exp.Or: self._and_or,
            exp.Not: self._not,
            exp.Paren: self._paren,
            exp.Is: self._is,
            exp.In: self._in,
            exp.Like: self._like,
            exp.ILike: self._like,
            exp.Between: self._between,
        }
        handler = handlers.get(type(node))
        if handler is not None:
            sql = handler(node, params)
        elif type(node) in _COMPARE:
            sql = self._compare(node, params)
        else:
            raise FilterError(f"not allowed in a filter: {node.sql()!r} ({node.key})")
        return f"(NOT {sql})" if node.args.get("negate") else sql

    def _and_or(self, node: Any, params: list[Any]) -> str:
        word = "AND" if isinstance(node, exp.And) else "OR"
        left = self._predicate(node.left, params)
        return f"({left} {word} {self._predicate(node.right, params)})"

    def _not(self, node: Any, params: list[Any]) -> str:
        return f"(NOT {self._predicate(node.this, params)})"

    def _paren(self, node: Any, params: list[Any]) -> str:
        return f"({self._predicate(node.this, params)})"

    def _compare(self, node: Any, params: list[Any]) -> str:
        op = _COMPARE[type(node)]
        left, right = node.left, node.right
        if isinstance(left, exp.Column):
            column, value = left, right
        elif isinstance(right, exp.Column):
            column, value, op = right, left, _FLIP[op]
        else:
            raise FilterError(f"compare a column with a value: {node.sql()!r}")
        if isinstance(value, exp.Null):
            raise FilterError(f"use IS NULL instead of {node.sql()!r}")
        params.append(self._literal(value))
        return f"{self._column(column)} {op} {self.placeholder}"

    def _is(self, node: Any, params: list[Any]) -> str:
        if not isinstance(node.expression, exp.Null):
            raise FilterError(f"only IS NULL and IS NOT NULL are allowed: {node.sql()!r}")
        return f"{self._column(node.this)} IS NULL"

    def _in(self, node: Any, params: list[Any]) -> str:
        if node.args.get("query") or node.args.get("unnest") or not node.expressions:
            raise FilterError(f"IN takes a list of values: {node.sql()!r}")
        column = self._column(node.this)
        for value in node.expressions:
            params.append(self._literal(value))
        marks = ", ".join([self.placeholder] * len(node.expressions))
        return f"{column} IN ({marks})"

    def _like(self, node: Any, params: list[Any]) -> str:
        if node.args.get("escape"):
            raise FilterError("LIKE ... ESCAPE is not supported")
        pattern = self._literal(node.expression)
        if not isinstance(pattern, str):
            raise FilterError(f"LIKE takes a string pattern: {node.sql()!r}")
        params.append(pattern)
        word = "ILIKE" if isinstance(node, exp.ILike) and self.ilike else "LIKE"
        return f"{self._column(node.this)} {word} {self.placeholder}"

    def _between(self, node: Any, params: list[Any]) -> str:
        column = self._column(node.this)
        params += [self._literal(node.args["low"]), self._literal(node.args["high"])]
        return f"{column} BETWEEN {self.placeholder} AND {self.placeholder}"

    def _column(self, node: exp.Expression) -> str:
        if (
            not isinstance(node, exp.Column)
            or node.table
            or not isinstance(node.this, exp.Identifier)
        ):
            raise FilterError(f"expected a column name, got {node.sql()!r}")
        return quote_ident(self.column_name(node.name))

    def column_name(self, name: str) -> str:
        """The table's column called ``name`` (exact, else the only case-insensitive match)."""
        if name in self.columns:
            return name
        folded = [c for c in self.columns if c.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise FilterError(f"unknown column {name!r}; columns: {', '.join(self.columns)}")

    def _literal(self, node: exp.Expression) -> Any:
        negative = False
        if isinstance(node, exp.Neg):
            negative, node = True, node.this
        if isinstance(node, exp.Boolean) and not negative:
            return bool(node.this)
        if not isinstance(node, exp.Literal):
            raise FilterError(f"expected a value (number or 'string'), got {node.sql()!r}")
        if node.is_string:
            if negative:
                raise FilterError(f"cannot negate a string: {node.sql()!r}")
            return node.this
        return self._number(("-" if negative else "") + node.this)

    def _number(self, text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise FilterError(f"not a number: {text!r}") from None
        return value if self.decimals else float(value)


def compile_sort(sort: str, compiler: FilterCompiler) -> str:
    """``ORDER BY`` items for ``a,-b`` (``-``: descending), or ``""``."""
    items = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        descending = part.startswith("-")
        name = part[1:] if descending or part.startswith("+") else part
        column = quote_ident(compiler.column_name(name))
        items.append(f"{column} {'DESC' if descending else 'ASC'}")
    if len(items) > 10:
        raise FilterError("sort by at most 10 columns")
    return ", ".join(items)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
