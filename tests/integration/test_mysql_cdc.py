"""Change data capture from the MariaDB binlog into DuckDB (destination equals source)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pymysql
import pytest

from aggregator.connectors.mysql import MySQLSource
from aggregator.connectors.mysql import cdc as mysql_cdc
from aggregator.connectors.mysql.cdc import BinlogReader
from aggregator.connectors.mysql.source import TableReader
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Records
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec
from tests.integration.test_mysql_source import MyDB

pytestmark = pytest.mark.integration


@pytest.fixture
def db(mysql_url: str) -> Iterator[MyDB]:
    d = MyDB(mysql_url)
    yield d
    d.execute(f"DROP DATABASE `{d.name}`")
    d.con.close()


def run(
    store: MetadataStore, db: MyDB, path: Path, streams: list[dict[str, Any]], **extra: Any
) -> RunRecord:
    spec = PipelineSpec.model_validate(
        {
            "name": "mycdc",
            "sources": [
                {
                    "name": "m",
                    "type": "mysql",
                    "config": {"url": db.url.rstrip("/") + "/" + db.name, "cdc": True, **extra},
                    "streams": streams,
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(path)}},
        }
    )
    record = LocalEngine(store).run(spec)
    assert record.status == "succeeded", record.error
    return record


ITEMS = [{"name": "items", "sync_mode": "incremental", "primary_key": ["id"]}]
PAIRS = [{"name": "pairs", "sync_mode": "incremental", "primary_key": ["a", "b"]}]


def seed(db: MyDB) -> None:
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v varchar(40), n bigint, amount decimal(12,2), "
        "happened datetime(6), ts timestamp(6) NULL, doc json)"
    )
    db.execute(
        "INSERT INTO items SELECT seq, concat('v', seq), seq, seq / 100, "
        "'2024-01-02 03:04:05.123456' + INTERVAL seq SECOND, "
        "'2024-06-01 00:00:00.5' + INTERVAL seq MINUTE, json_object('k', seq) "
        "FROM seq_1_to_3000"
    )
    db.execute("CREATE TABLE pairs (a int, b varchar(10), v int, PRIMARY KEY (a, b))")
    db.execute("INSERT INTO pairs SELECT seq % 10, concat('k', seq), seq FROM seq_1_to_200")


def changes(db: MyDB) -> None:
    db.execute("INSERT INTO items (id, v, n) SELECT seq, 'new', seq FROM seq_3001_to_3500")
    db.execute("UPDATE items SET v = 'upd', n = n + 1000, amount = 1.25 WHERE id % 10 = 0")
    db.execute("DELETE FROM items WHERE id % 7 = 0")
    db.execute("UPDATE items SET v = 'again' WHERE id = 20")
    db.execute("INSERT INTO items (id, v, n) VALUES (7, 'reborn', 7)")  # deleted, then back
    db.execute("INSERT INTO items (id, v, n) VALUES (9999, 'short-lived', 0)")
    db.execute("DELETE FROM items WHERE id = 9999")
    db.execute("UPDATE items SET id = id + 100000 WHERE id BETWEEN 100 AND 110")  # keys move
    db.execute("START TRANSACTION")
    db.execute("UPDATE items SET ts = '2030-01-01 00:00:00' WHERE id < 50")
    db.execute("DELETE FROM items WHERE id BETWEEN 60 AND 69")
    db.execute("COMMIT")
    db.execute("START TRANSACTION")
    db.execute("DELETE FROM items WHERE id = 1")
    db.execute("ROLLBACK")  # never committed: not in the binlog
    db.execute("UPDATE pairs SET v = -v WHERE a = 3")
    db.execute("DELETE FROM pairs WHERE a = 4")
    db.execute("UPDATE pairs SET b = concat(b, 'x') WHERE a = 5")
    db.execute("INSERT INTO pairs VALUES (42, 'z', 1)")


ITEM_COLUMNS = "id, v, n, amount, happened, ts, doc"


def source_items(db: MyDB) -> list[tuple[Any, ...]]:
    rows = db.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id")
    return [
        (
            i,
            v,
            n,
            amount,
            happened,
            None if ts is None else ts.replace(tzinfo=dt.UTC),
            doc,
        )
        for i, v, n, amount, happened, ts, doc in rows
    ]


def dest_items(path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id").fetchall()
    return [
        (i, v, n, amount, happened, ts, None if doc is None else doc.replace(": ", ":"))
        for i, v, n, amount, happened, ts, doc in rows
    ]


def normal_json(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[:-1], None if r[-1] is None else r[-1].replace(": ", ":")) for r in rows]


def test_cdc_into_duckdb_equals_source(
    db: MyDB, store: MetadataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mysql_cdc, "_DELIVER_KEYS", 300)  # several deliveries and checkpoints
    seed(db)
    path = tmp_path / "w.duckdb"
    first = run(store, db, path, ITEMS + PAIRS, batch_size=500)
    assert [s.rows_loaded for s in first.streams] == [3000, 200]
    assert normal_json(dest_items(path)) == normal_json(source_items(db))
    changes(db)
    run(store, db, path, ITEMS + PAIRS, batch_size=500)
    again = run(store, db, path, ITEMS + PAIRS, batch_size=500)  # nothing new: a no-op
    assert [s.rows_loaded for s in again.streams] == [0, 0]
    expected = normal_json(source_items(db))
    assert len(expected) == 3000 + 500 - 500 + 1 - 9  # inserts, deletes (id % 7), 7 back, 60-69
    assert normal_json(dest_items(path)) == expected
    with duckdb.connect(str(path)) as con:
        pairs = con.execute("SELECT a, b, v FROM pairs ORDER BY a, b").fetchall()
        columns = [r[0] for r in con.execute("DESCRIBE items").fetchall()]
        amount = con.execute("SELECT amount FROM items WHERE id = 30").fetchone()
    assert pairs == db.execute("SELECT a, b, v FROM pairs ORDER BY a, b")
    assert "_aggregator_deleted" not in columns
    assert amount == (Decimal("1.25"),)


def binlog_reader(db: MyDB, table: str, **extra: Any) -> BinlogReader:
    src = db.source(cdc=True, **extra)
    assert isinstance(src, MySQLSource)
    t = next(t for t in src._tables() if t.name == table)
    stream = ConfiguredStream(table, SyncMode.INCREMENTAL, WriteMode.MERGE, primary_key=("id",))
    return BinlogReader(TableReader(src.config, t, stream))


def test_snapshot_resumes_after_the_committed_key(db: MyDB) -> None:
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO s SELECT seq, seq FROM seq_1_to_50")
    reader = binlog_reader(db, "s", batch_size=20, checkpoint_rows=20)
    msgs = list(reader.read({}))
    states = [m.state for m in msgs if isinstance(m, Checkpoint)]
    assert [s.get("after") for s in states[:2]] == [[20], [40]]  # 10 rows left: no checkpoint
    position = states[-1]["binlog"]
    assert states[-1] == {"binlog": position} and set(position) == {"file", "pos"}
    db.execute("INSERT INTO s VALUES (51, 51)")
    resumed = list(reader.read({"binlog": position, "after": [40]}))
    ids = [i for m in resumed if isinstance(m, Records) for i in m.batch.column("id").to_pylist()]
    # rows after key 40 from the snapshot, then row 51 again as a change (merge is idempotent)
    assert ids == [*range(41, 52), 51]


def test_tables_without_primary_key_and_views_are_refused(db: MyDB) -> None:
    db.execute("CREATE TABLE nokey (v int)")
    db.execute("CREATE VIEW w AS SELECT 1 AS id")
    with pytest.raises(ConfigError, match="needs a primary key"):
        binlog_reader(db, "nokey")
    db.execute("CREATE TABLE blobkey (id varbinary(10) PRIMARY KEY)")
    with pytest.raises(ConfigError, match=r"id is not"):
        binlog_reader(db, "blobkey")


def test_purged_binlog_file_is_explained(db: MyDB) -> None:
    db.execute("CREATE TABLE s (id int PRIMARY KEY)")
    reader = binlog_reader(db, "s")
    with pytest.raises(ConfigError, match=r"is gone.*reset the stream's state"):
        list(reader.read({"binlog": {"file": "mysql-bin.999999", "pos": 4}}))


def test_statement_binlog_says_how_to_fix(db: MyDB) -> None:
    db.execute("CREATE TABLE s (id int PRIMARY KEY)")
    reader = binlog_reader(db, "s")

    class Server:
        def __init__(self, log_bin: int, fmt: str) -> None:
            self.row = ("10.11.0-MariaDB", log_bin, fmt)

        def execute(self, _sql: str) -> None:
            pass

        def fetchone(self) -> tuple[Any, ...]:
            return self.row

    with pytest.raises(ConfigError, match=r"binlog_format = MIXED.*binlog_format = ROW"):
        reader._check_server(Server(1, "MIXED"))
    with pytest.raises(ConfigError, match=r"no binary log.*--log-bin"):
        reader._check_server(Server(0, "ROW"))


def test_keys_found_after_columns_of_every_kind(db: MyDB) -> None:
    """Multi-row events whose key comes last: skipped values must be sized exactly."""
    db.execute(
        "CREATE TABLE k (ty tinyint, sm smallint unsigned, me mediumint, bi bigint, fl float, "
        "db double, dc decimal(30,7), sd decimal(5,0), dt date, tm time(3), dtt datetime(4), "
        "ts timestamp(2) NULL, yr year, ch char(5), vc varchar(300), tx text, bl blob, js json, "
        "bt bit(10), en enum('a','b'), st set('x','y'), id varchar(12) PRIMARY KEY)"
    )
    row = (
        "(-1, 65535, -8388608, 9007199254740993, 1.5, -2.25, 12345678901234567890.1234567, "
        "-99999, '2024-01-02', '-838:59:59.999', '2024-01-02 03:04:05.1234', "
        "'2024-01-02 03:04:05.12', 2024, 'ab', repeat('x', 290), repeat('y', 1000), "
        "x'00ff00', '{\"a\": [1, 2]}', b'1010101010', 'b', 'x,y', concat('k', seq))"
    )
    db.execute(f"INSERT INTO k SELECT {row[1:-1]} FROM seq_1_to_5")
    reader = binlog_reader(db, "k")
    state = [m.state for m in reader.read({}) if isinstance(m, Checkpoint)][-1]
    new_rows = row[1:-1].replace("concat('k', seq)", "concat('n', seq)")
    db.execute(f"INSERT INTO k SELECT {new_rows} FROM seq_1_to_40")
    db.execute("UPDATE k SET vc = NULL, dc = 1, id = concat(id, 'm') WHERE id LIKE 'n1%'")
    db.execute("DELETE FROM k WHERE id LIKE 'n2%' OR id = 'k3'")
    msgs = list(reader.read(state))
    live = [
        i
        for m in msgs
        if isinstance(m, Records)
        for i, gone in zip(
            m.batch.column("id").to_pylist(),
            m.batch.column("_aggregator_deleted").to_pylist(),
            strict=True,
        )
        if not gone
    ]
    deleted = {
        i
        for m in msgs
        if isinstance(m, Records)
        for i, gone in zip(
            m.batch.column("id").to_pylist(),
            m.batch.column("_aggregator_deleted").to_pylist(),
            strict=True,
        )
        if gone
    }
    expected_live = {r[0] for r in db.execute("SELECT id FROM k WHERE id LIKE 'n%'")}
    assert set(live) == expected_live and len(live) == len(expected_live)
    moved = {f"n{i}" for i in (1, *range(10, 20))}
    assert deleted == moved | {f"n{i}" for i in (2, *range(20, 30))} | {"k3"}


def test_integer_keys_read_from_event_bytes_equal_the_library_decoding(
    db: MyDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path (integer keys walked straight from the row images) finds the same keys
    as mysql-replication's decoding, after columns of every sized kind, NULLs included."""
    db.execute(
        "CREATE TABLE fk (ty tinyint, sm smallint unsigned, me mediumint, fl float, db double, "
        "dc decimal(30,7), dt date, tm time(3), dtt datetime(4), ts timestamp(2) NULL, yr year, "
        "ch char(5), vc varchar(300), tx text, bl blob, js json, bt bit(10), "
        "id bigint unsigned NOT NULL, k2 mediumint NOT NULL, PRIMARY KEY (id, k2))"
    )
    reader = binlog_reader(db, "fk")
    reader.keys = ["id", "k2"]  # binlog_reader() assumed ("id",): the stream's key is both
    state = [m.state for m in reader.read({}) if isinstance(m, Checkpoint)][-1]
    values = (
        "-1, 65535, -8388608, 1.5, -2.25, 12345678901234567890.1234567, '2024-01-02', "
        "'-838:59:59.999', '2024-01-02 03:04:05.1234', '2024-01-02 03:04:05.12', 2024, 'ab', "
        "repeat('x', 290), repeat('y', 1000), x'00ff00', '{\"a\": [1, 2]}', b'1010101010'"
    )
    nulls = ", ".join(["NULL"] * 17)
    db.execute(f"INSERT INTO fk SELECT {values}, 9223372036854775807 - seq, -seq FROM seq_1_to_30")
    db.execute(f"INSERT INTO fk SELECT {nulls}, seq, seq FROM seq_1_to_10")
    db.execute("UPDATE fk SET vc = NULL, id = id - 100 WHERE k2 < -20")
    db.execute("UPDATE fk SET tx = 'z' WHERE k2 BETWEEN 3 AND 5")
    db.execute("DELETE FROM fk WHERE k2 IN (-2, 7)")
    used: list[bool] = []
    fast = mysql_cdc._integer_keys

    def spy(event: Any, positions: Any) -> Any:
        found = fast(event, positions)
        used.append(found is not None)
        return found

    monkeypatch.setattr(mysql_cdc, "_integer_keys", spy)
    quick = [m.batch.to_pylist() for m in reader.read(state) if isinstance(m, Records)]
    assert used and all(used)
    monkeypatch.setattr(mysql_cdc, "_integer_keys", lambda event, positions: None)
    slow = [m.batch.to_pylist() for m in reader.read(state) if isinstance(m, Records)]
    assert quick == slow
    rows = [r for batch in quick for r in batch]
    assert len(rows) == 30 + 10 + 10  # inserted keys, plus the old keys of the 10 moved rows
    gone = {(r["id"], r["k2"]) for r in rows if r["_aggregator_deleted"]}
    moved = {(9223372036854775807 - i, -i) for i in range(21, 31)}
    assert gone == moved | {(9223372036854775805, -2), (7, 7)}
    # above 2**63: MariaDB's table map has no signedness, mysql-replication decodes this key
    # as a negative number; the fast path takes it from the discovered column type
    state = [m.state for m in reader.read(state) if isinstance(m, Checkpoint)][-1]
    db.execute(f"INSERT INTO fk SELECT {values}, 18446744073709551615, 1")
    monkeypatch.setattr(mysql_cdc, "_integer_keys", fast)
    new = [r for m in reader.read(state) if isinstance(m, Records) for r in m.batch.to_pylist()]
    assert [(r["id"], r["k2"], r["_aggregator_deleted"]) for r in new] == [
        (18446744073709551615, 1, False)
    ]


def test_follow_commits_rounds_of_changes_while_running_and_stops_cleanly(
    db: MyDB, store: MetadataStore
) -> None:
    """``run --follow`` (into another MariaDB database, readable while the run goes on)."""
    import threading
    import time

    from aggregator.engines.follow import Follow

    seed(db)
    target = db.name + "_dest"
    spec = PipelineSpec.model_validate(
        {
            "name": "myfollow",
            "sources": [
                {
                    "name": "m",
                    "type": "mysql",
                    "config": {"url": db.url.rstrip("/") + "/" + db.name, "cdc": True},
                    "streams": ITEMS,
                }
            ],
            "destination": {
                "type": "mysql",
                "config": {"url": db.url.rstrip("/") + "/" + target},
            },
        }
    )
    follow = Follow(interval=0.2)
    result: list[RunRecord] = []
    runner = threading.Thread(
        target=lambda: result.append(LocalEngine(store).run(spec, follow=follow))
    )
    columns = "id, v, n, amount, happened, ts, cast(doc AS char)"

    def rows(database: str) -> list[tuple[Any, ...]] | None:
        try:
            found = db.execute(f"SELECT {columns} FROM `{database}`.items ORDER BY id")
        except pymysql.MySQLError:  # not created yet
            return None
        return normal_json([tuple(r) for r in found])

    def wait_until_equal(what: str) -> None:
        deadline = time.monotonic() + 60
        while rows(target) != rows(db.name):
            if time.monotonic() > deadline:
                got, want = rows(target) or [], rows(db.name) or []
                odd = [(g, w) for g, w in zip(got, want, strict=False) if g != w][:2]
                raise AssertionError(f"timed out waiting for {what}: {len(got)} {len(want)} {odd}")
            time.sleep(0.1)

    runner.start()
    try:
        wait_until_equal("the snapshot")
        for round_ in range(3):  # each round shows up while the run goes on
            first = 5000 + round_ * 100
            db.execute(f"INSERT INTO items (id, v) SELECT {first} + seq, 'new' FROM seq_1_to_50")
            db.execute(f"UPDATE items SET v = 'upd{round_}' WHERE id % 10 = {round_}")
            db.execute(f"DELETE FROM items WHERE id % 97 = {round_}")
            wait_until_equal(f"round {round_}")
        assert runner.is_alive()
    finally:
        follow.stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    db.execute(f"DROP DATABASE IF EXISTS `{target}`")
    record = result[0]
    assert record.status == "succeeded", record.error
    assert len(store.list_runs("myfollow", 10)) == 1  # one long run, many commits
