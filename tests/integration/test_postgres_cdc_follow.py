"""Continuous CDC (``aggregator run --follow``) and 100k mixed changes into DuckDB and
PostgreSQL, compared in full with the source."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from aggregator.connectors.postgres.cdc import lsn_to_int
from aggregator.engines.follow import Follow
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec
from tests.integration.databases.pg import PgSchema
from tests.integration.databases.pg_cdc import (
    ITEMS_DDL,
    CdcSchema,
    ChangeWriter,
    cdc_schema,
    fill,
    pipeline,
    rows_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def db(pg_url: str) -> Iterator[CdcSchema]:
    yield from cdc_schema(pg_url)


@pytest.fixture
def target(pg_url: str) -> Iterator[PgSchema]:
    schema = PgSchema(pg_url)
    try:
        yield schema
    finally:
        schema.drop()


def wait_for(what: str, check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def committed_lsn(target: PgSchema, name: str) -> int:
    if target.execute("SELECT to_regclass('_aggregator_state')") == [(None,)]:
        return -1
    rows = target.execute(
        "SELECT state FROM _aggregator_state WHERE pipeline = %s ORDER BY seq DESC LIMIT 1", [name]
    )
    state = rows[0][0] if rows else None
    if not state or state.get("snapshot"):
        return -1
    return lsn_to_int(state["lsn"])


def test_follow_commits_while_running_and_stops_cleanly(
    db: CdcSchema, target: PgSchema, store: MetadataStore
) -> None:
    db.execute(ITEMS_DDL)
    fill(db.con, 500)
    spec = PipelineSpec.model_validate(
        pipeline("follow", db.cdc_source(), {"type": "postgres", "config": target.destination()})
    )
    follow = Follow(interval=0.2)
    result: list[RunRecord] = []
    engine = LocalEngine(store)
    runner = threading.Thread(target=lambda: result.append(engine.run(spec, follow=follow)))
    runner.start()
    try:
        wait_for("the snapshot", lambda: committed_lsn(target, "follow") >= 0)
        writer = ChangeWriter(db.con, next_id=501)
        for round_ in range(3):  # each round shows up while the run goes on
            for _ in range(20):
                writer.transaction(10)
            wait_for(
                f"round {round_}",
                lambda: committed_lsn(target, "follow") >= lsn_to_int(writer.last_lsn),
            )
            assert rows_of(target.con) == rows_of(db.con)
        assert runner.is_alive()
    finally:
        follow.stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    record = result[0]
    assert record.status == "succeeded", record.error
    assert [s.status for s in record.streams] == ["succeeded"]
    assert len(store.list_runs("follow", 10)) == 1  # one long run, many commits
    assert rows_of(target.con) == rows_of(db.con)


def _cli(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        AGGREGATOR_HOME=str(home),
        AGGREGATOR_LOG_FORMAT="json",
        AGGREGATOR_LOG_LEVEL="info",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli.main", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


_LSN = re.compile(r"(?:committed changes up to LSN|created replication slot \S+ at) (\S+)")


class LogWatcher:
    """Collects the LSNs of committed CDC cycles from the CLI's JSON log."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lsns: list[int] = [-1]
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            try:
                event = str(json.loads(line).get("event", ""))
            except (json.JSONDecodeError, AttributeError):
                continue
            found = _LSN.search(event)
            if found:
                self.lsns.append(lsn_to_int(found.group(1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_follow_stops_on_signal(db: CdcSchema, tmp_path: Path, sig: signal.Signals) -> None:
    db.execute(ITEMS_DDL)
    fill(db.con, 200)
    out = tmp_path / "out.duckdb"
    spec = pipeline("cli_follow", db.cdc_source(), {"type": "duckdb", "config": {"path": str(out)}})
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(spec))
    proc = _cli(tmp_path / "home", "run", str(path), "--follow", "--commit-interval", "0.3")
    try:
        watcher = LogWatcher(proc)
        wait_for("the slot", lambda: len(watcher.lsns) > 1, 120)
        writer = ChangeWriter(db.con, next_id=201)
        for _ in range(30):
            writer.transaction(5)
        wait_for("the changes", lambda: watcher.lsns[-1] >= lsn_to_int(writer.last_lsn))
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, "".join(watcher.lines[-20:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        watcher.thread.join(timeout=10)
        proc.stderr.close()
    with duckdb.connect(str(out)) as con:
        assert rows_of(con, text="varchar") == rows_of(db.con)
    # a pipeline with a stream that cannot follow is refused before anything runs
    spec["sources"][0]["config"]["cdc"] = False
    path.write_text(yaml.safe_dump(spec))
    refused = _cli(tmp_path / "home", "run", str(path), "--follow")
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 1
    assert "--follow: streams items (db) cannot be read continuously" in err


def test_100k_mixed_changes_into_duckdb_and_postgres(
    db: CdcSchema, target: PgSchema, store: MetadataStore, tmp_path: Path
) -> None:
    db.execute(ITEMS_DDL)
    fill(db.con, 50_000)
    out = tmp_path / "out.duckdb"
    specs = {
        "duckdb": PipelineSpec.model_validate(
            pipeline(
                "to_duckdb",
                db.cdc_source(f"{db.prefix}_d", cdc_max_changes=30_000),
                {"type": "duckdb", "config": {"path": str(out)}},
            )
        ),
        "postgres": PipelineSpec.model_validate(
            pipeline(
                "to_postgres",
                db.cdc_source(f"{db.prefix}_p"),
                {"type": "postgres", "config": target.destination()},
            )
        ),
    }
    # DuckDB by repeated runs; PostgreSQL by one continuous run while the changes happen
    assert LocalEngine(store).run(specs["duckdb"]).status == "succeeded"
    follow = Follow(interval=0.5)
    result: list[RunRecord] = []
    runner = threading.Thread(
        target=lambda: result.append(LocalEngine(store).run(specs["postgres"], follow=follow))
    )
    runner.start()
    try:
        wait_for("the snapshot", lambda: committed_lsn(target, "to_postgres") >= 0, 120)
        # 100,000 row changes: about 40k from set statements, the rest single-row changes in
        # transactions of 50
        bulk = 0
        for statement in (
            "INSERT INTO items SELECT g, 'bulk', 1, now(), '{}', '{}' "
            "FROM generate_series(100001, 110000) g",
            "UPDATE items SET v = v || '!', doc = doc || '{\"b\": 2}' WHERE id % 4 = 0",
            "DELETE FROM items WHERE id % 7 = 1 AND id <= 50000",
            "UPDATE items SET n = n * 2 WHERE id > 100000 AND id % 10 <> 3",
        ):
            bulk += db.con.execute(statement).rowcount
        writer = ChangeWriter(db.con, next_id=200_000)
        while writer.changes < 100_000 - bulk:
            writer.transaction(min(50, 100_000 - bulk - writer.changes))
        assert bulk > 35_000 and bulk + writer.changes == 100_000
        final = lsn_to_int(writer.last_lsn)
        wait_for("postgres", lambda: committed_lsn(target, "to_postgres") >= final, 300)
    finally:
        follow.stop.set()
        runner.join(timeout=60)
    assert result and result[0].status == "succeeded", result and result[0].error
    loaded = -1
    while loaded != 0:  # each run reads at most cdc_max_changes messages
        record = LocalEngine(store).run(specs["duckdb"])
        assert record.status == "succeeded", record.error
        loaded = sum(s.rows_loaded for s in record.streams)
    expected = rows_of(db.con)
    assert len(expected) > 50_000
    assert rows_of(target.con) == expected
    with duckdb.connect(str(out)) as con:
        assert rows_of(con, text="varchar") == expected
