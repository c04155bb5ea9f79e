"""Reads and writes of the metadata repository, shared by the engine, the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload, sessionmaker

from aggregator.metadata import revision
from aggregator.metadata.models import Run, RunStream, SchemaVersion


@dataclass
class StreamRunRecord:
    """Per-stream outcome of a run."""

    name: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    bytes: int = 0
    seconds: float = 0.0
    state: dict[str, Any] | None = None
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of stream time."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The shape printed by ``run --json``."""
        return {
            "name": self.name,
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "error": self.error,
        }


@dataclass
class RunRecord:
    """A run and its streams."""

    id: str
    pipeline: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    full_refresh: bool = False
    error: str | None = None
    streams: list[StreamRunRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Wall-clock duration."""
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly description (``run --json``, ``runs show --json``)."""
        return {
            "run_id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": round(self.seconds, 3),
            "full_refresh": self.full_refresh,
            "error": self.error,
            "streams": [s.to_json() for s in self.streams],
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class MetadataStore:
    """The metadata database (SQLite by default; any SQLAlchemy URL, PostgreSQL in production)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if not revision.is_current(self.engine):
            from aggregator.metadata import migrate  # Alembic loads only to upgrade

            migrate.upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        """A new ORM session."""
        return self._sessions()

    def start_run(
        self, run_id: str, pipeline: str, full_refresh: bool, spec_path: str | None
    ) -> None:
        """Record a run as running."""
        with self.session() as s, s.begin():
            s.add(
                Run(
                    id=run_id,
                    pipeline=pipeline,
                    status="running",
                    started_at=datetime.now(UTC),
                    full_refresh=full_refresh,
                    spec_path=spec_path,
                )
            )

    def finish_run(self, record: RunRecord) -> None:
        """Store the outcome of a run and its streams."""
        with self.session() as s, s.begin():
            run = s.get(Run, record.id)
            if run is None:
                raise KeyError(record.id)
            run.status = record.status
            run.finished_at = record.finished_at
            run.error = record.error
            run.streams = [
                RunStream(
                    stream=r.name,
                    status=r.status,
                    rows_read=r.rows_read,
                    rows_loaded=r.rows_loaded,
                    rows_quarantined=r.rows_quarantined,
                    bytes=r.bytes,
                    seconds=r.seconds,
                    state=r.state,
                    error=r.error,
                )
                for r in record.streams
            ]

    def list_runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Most recent runs first."""
        query = select(Run).options(selectinload(Run.streams)).order_by(Run.started_at.desc())
        if pipeline:
            query = query.where(Run.pipeline == pipeline)
        with self.session() as s:
            return [self._record(r) for r in s.scalars(query.limit(limit))]

    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by id (a unique prefix is accepted)."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                matches = list(s.scalars(select(Run).where(Run.id.startswith(run_id)).limit(2)))
                run = matches[0] if len(matches) == 1 else None
            return self._record(run) if run else None

    @staticmethod
    def _record(run: Run) -> RunRecord:
        return RunRecord(
            id=run.id,
            pipeline=run.pipeline,
            status=run.status,
            started_at=_aware(run.started_at),
            finished_at=_aware(run.finished_at) if run.finished_at else None,
            full_refresh=run.full_refresh,
            error=run.error,
            streams=[
                StreamRunRecord(
                    name=x.stream,
                    status=x.status,
                    rows_read=x.rows_read,
                    rows_loaded=x.rows_loaded,
                    rows_quarantined=x.rows_quarantined,
                    bytes=x.bytes,
                    seconds=x.seconds,
                    state=x.state,
                    error=x.error,
                )
                for x in run.streams
            ],
        )

    def add_schema_version(
        self,
        pipeline: str,
        stream: str,
        columns: list[dict[str, Any]],
        diff: dict[str, Any],
        run_id: str | None,
        stream_metadata: dict[str, Any] | None = None,
    ) -> int:
        """Store a new schema version with its diff and the source's stream metadata (keys,
        cursor, size estimates, native types); returns the version number."""
        with self.session() as s, s.begin():
            latest = s.scalar(
                select(func.max(SchemaVersion.version)).where(
                    SchemaVersion.pipeline == pipeline, SchemaVersion.stream == stream
                )
            )
            version = (latest or 0) + 1
            s.add(
                SchemaVersion(
                    pipeline=pipeline,
                    stream=stream,
                    version=version,
                    columns=columns,
                    diff=diff,
                    run_id=run_id,
                    created_at=datetime.now(UTC),
                    stream_metadata=stream_metadata,
                )
            )
            return version

    def set_stream_metadata(
        self, pipeline: str, stream: str, stream_metadata: dict[str, Any]
    ) -> bool:
        """Replace the newest schema version's stream metadata; False when there is none."""
        with self.session() as s, s.begin():
            newest = s.scalar(
                select(SchemaVersion)
                .where(SchemaVersion.pipeline == pipeline, SchemaVersion.stream == stream)
                .order_by(SchemaVersion.version.desc())
                .limit(1)
            )
            if newest is None:
                return False
            newest.stream_metadata = stream_metadata
            return True

    def schema_versions(self, pipeline: str, stream: str) -> list[dict[str, Any]]:
        """Every stored version of a stream's schema, oldest first."""
        query = (
            select(SchemaVersion)
            .where(SchemaVersion.pipeline == pipeline, SchemaVersion.stream == stream)
            .order_by(SchemaVersion.version)
        )
        with self.session() as s:
            return [
                {
                    "version": v.version,
                    "columns": v.columns,
                    "diff": v.diff,
                    "stream_metadata": v.stream_metadata,
                    "run_id": v.run_id,
                    "created_at": _aware(v.created_at).isoformat(),
                }
                for v in s.scalars(query)
            ]

    def mark_interrupted(self, pipeline: str) -> int:
        """Mark runs left ``running`` by a killed process as ``interrupted``."""
        with self.session() as s, s.begin():
            runs = list(
                s.scalars(select(Run).where(Run.pipeline == pipeline, Run.status == "running"))
            )
            for run in runs:
                run.status = "interrupted"
            return len(runs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
