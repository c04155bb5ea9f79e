"""A fresh PostgreSQL database per test session, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg 3 URL."""
    return str(make_url(url).set(drivername="postgresql+psycopg").render_as_string(False))


@contextmanager
def fresh_database(pg_url: str) -> Iterator[str]:
    """Create an empty database on the test server; yield its SQLAlchemy URL."""
    name = f"agg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy_url(str(make_url(pg_url).set(database=name).render_as_string(False)))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
