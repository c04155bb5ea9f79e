"""The real services started by `make test` answer (a missing one fails, never skips)."""

from __future__ import annotations

from urllib.parse import urlparse

import psycopg
import pymysql
import pytest
import redis

pytestmark = pytest.mark.integration


def test_postgres_is_up_with_logical_wal(pg_url: str) -> None:
    with psycopg.connect(pg_url) as con:
        assert con.execute("show wal_level").fetchone() == ("logical",)


def test_mariadb_is_up_with_row_binlog(mysql_url: str) -> None:
    url = urlparse(mysql_url)
    con = pymysql.connect(
        host=url.hostname, port=url.port, user=url.username, password=url.password or ""
    )
    try:
        with con.cursor() as cur:
            cur.execute("select @@binlog_format")
            assert cur.fetchone() == ("ROW",)
    finally:
        con.close()


def test_redis_is_up(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.close()
