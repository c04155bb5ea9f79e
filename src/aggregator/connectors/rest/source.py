"""The declarative ``rest`` source: streams of any JSON HTTP API, configured in YAML.

State (per stream)::

    {"cursor": v}                                    after a run (incremental streams)
    {"cursor": v, "floor": f, "page": k, "next": r}  during a run (root streams)

``floor`` is the saved cursor the run sends and filters on (records with a cursor ``<=`` it
are dropped, so a server that treats the parameter as ``>=`` causes no duplicates);
``next`` and ``page`` locate the next page, so a resumed run continues where the last
checkpoint was taken. Child streams (``parent``) checkpoint at the end only.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import jmespath
import pyarrow as pa
import pyarrow.compute as pc

from aggregator.connectors.rest.config import RestConfig, RestStreamConfig
from aggregator.connectors.rest.http import HttpClient, Request, RequestKey, Response
from aggregator.connectors.rest.pagination import Paginator
from aggregator.connectors.rest.records import PageTyper, json_types, loads
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import AggregatorError, ConfigError
from aggregator.core.inference import cast_text
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records, StreamInfo


@dataclass
class Page:
    """A fetched and decoded page."""

    index: int
    request: Request
    response: Response
    data: Any = None
    records: list[Any] | None = None
    error: str | None = None
    exact: bool = False


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class _Cursor:
    """The incremental cursor of one read: the floor filtered on and the maximum seen."""

    def __init__(self, field: str, floor: Any) -> None:
        self.field = field
        self.floor = floor
        self.best: Any = floor
        self._best_scalar: pa.Scalar | None = None

    def _scalar(self, value: Any, dtype: pa.DataType) -> pa.Scalar | None:
        try:
            if isinstance(value, str) and not pa.types.is_string(dtype):
                return cast_text(pa.array([value], pa.string()), dtype)[0]
            return pa.scalar(value).cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Drop rows at or below the floor; remember the maximum."""
        if self.field not in batch.schema.names:
            return batch
        column = batch.column(self.field)
        if self.floor is not None:
            floor = self._scalar(self.floor, column.type)
            if floor is not None:
                batch = batch.filter(pc.fill_null(pc.greater(column, floor), False))
                column = batch.column(self.field)
        top = pc.max(column)
        if top.is_valid:
            best = None if self.best is None else self._scalar(self.best, column.type)
            if best is None or pc.greater(top, best).as_py():
                self.best = _json_value(top.as_py())
        return batch


class RestSource(Source[RestConfig]):
    """Reads JSON HTTP APIs: auth, pagination, parent/child streams, incremental cursors."""

    name: ClassVar[str] = "rest"
    config_model = RestConfig
    description: ClassVar[str] = "Any JSON REST API, declared in YAML (auth, pagination, cursors)"

    def __init__(self, config: RestConfig) -> None:
        super().__init__(config)
        self._http: HttpClient | None = None
        self._lock = threading.Lock()

    @property
    def http(self) -> HttpClient:
        """The source's pooled HTTP client, shared by every stream read in this process."""
        with self._lock:
            if self._http is None:
                self._http = HttpClient(self.config)
                weakref.finalize(self, self._http.close)
            return self._http

    def _stream(self, name: str) -> RestStreamConfig:
        for cfg in self.config.streams:
            if cfg.name == name:
                return cfg
        known = ", ".join(s.name for s in self.config.streams)
        raise ConfigError(f"unknown stream {name!r} for the rest source; configured: {known}")

    def stream_names(self) -> list[str]:
        """The configured streams (no request is sent)."""
        return [s.name for s in self.config.streams]

    # -- requests and pages -------------------------------------------------------------------

    def _base(self, cfg: RestStreamConfig, parent: dict[str, Any] | None) -> Request:
        path = cfg.path
        if parent is not None:
            try:
                path = path.format_map({k: v for k, v in parent.items() if v is not None})
            except KeyError as exc:
                raise ConfigError(
                    f"stream {cfg.name!r}: path placeholder {exc} is not a field of the "
                    f"parent stream {cfg.parent!r}"
                ) from None
        url = path if path.startswith(("http://", "https://")) else self.config.base_url + path
        return Request(url, tuple(cfg.params.items()), cfg.method, cfg.json_body)

    def _paginator(self, cfg: RestStreamConfig) -> Paginator:
        return Paginator(cfg.pagination or self.config.pagination, self.config.base_url)

    def _fetch(self, cfg: RestStreamConfig, index: int, request: Request) -> Page:
        response = self.http.send(request, cfg.headers)
        page = Page(index, request, response)
        try:
            if response.body.strip():
                page.data, page.exact = loads(response.body)
        except ValueError as exc:
            page.error = f"invalid JSON from {response.url}: {exc}"
            return page
        selected = (
            jmespath.search(cfg.records_path, page.data)
            if cfg.records_path and isinstance(page.data, dict | list)
            else page.data
        )
        if selected is None:
            selected = []
        elif isinstance(selected, dict):
            selected = [selected]
        if not isinstance(selected, list):
            page.error = (
                f"records_path {cfg.records_path!r} selected a {type(selected).__name__} "
                f"in {response.url}, expected a list of objects"
            )
            return page
        page.records = selected
        return page

    def _pages(
        self,
        cfg: RestStreamConfig,
        base: Request,
        start: int = 0,
        resume: Request | None = None,
        width: int | None = None,
    ) -> Iterator[tuple[Page, Request | None]]:
        """Pages in order with the request after each (``None`` at the end).

        Predictable pages are fetched ahead through a sliding window of ``concurrency``
        requests, so parsing overlaps with waiting for the network.
        """
        paginator = self._paginator(cfg)
        seen: set[RequestKey] = set()
        if not paginator.predictable:
            request: Request | None = resume or base
            k = start
            while request is not None:
                page = self._fetch(cfg, k, request)
                nxt = self._next(paginator, base, page, seen)
                yield page, (None if isinstance(nxt, _Loop) else nxt)
                if isinstance(nxt, _Loop):
                    raise nxt
                request, k = nxt, k + 1
            return
        width = width or self.config.concurrency
        with ThreadPoolExecutor(max_workers=width) as pool:
            ahead: deque[Future[Page]] = deque()
            k = start
            try:
                while True:
                    # twice the pool: `width` requests stay in flight while pages wait to be
                    # consumed (the pool itself bounds the concurrency)
                    while len(ahead) < 2 * width:
                        ahead.append(pool.submit(self._fetch, cfg, k, paginator.nth(base, k)))
                        k += 1
                    page = ahead.popleft().result()
                    nxt = self._next(paginator, base, page, seen)
                    if isinstance(nxt, _Loop):  # pragma: no cover - predictable pages differ
                        raise nxt
                    yield page, nxt
                    if nxt is None:
                        return
            finally:
                for future in ahead:
                    future.cancel()

    def _next(
        self,
        paginator: Paginator,
        base: Request,
        page: Page,
        seen: set[RequestKey],
    ) -> Request | _Loop | None:
        seen.add(page.request.key())
        if page.error is not None:
            return None
        count = len(page.records or [])
        nxt = paginator.next(base, page.index, page.request, page.response, page.data, count)
        if nxt is not None and nxt.key() in seen:
            return _Loop(page.response.url)
        return nxt

    def _parents(self, cfg: RestStreamConfig) -> Iterator[dict[str, Any] | None]:
        """The records of the parent stream (one ``None`` for a root stream)."""
        if cfg.parent is None:
            yield None
            return
        parent = self._stream(cfg.parent)
        for context in self._parents(parent):
            for page, _ in self._pages(parent, self._base(parent, context)):
                for record in page.records or []:
                    if isinstance(record, dict):
                        yield record

    # -- the SDK ------------------------------------------------------------------------------

    def check(self) -> CheckResult:
        """The first page of every root stream answers with JSON."""
        try:
            for cfg in self.config.streams:
                if cfg.parent is None:
                    page = self._fetch(cfg, 0, self._paginator(cfg).nth(self._base(cfg, None), 0))
                    if page.error:
                        return CheckResult(False, f"stream {cfg.name!r}: {page.error}")
        except AggregatorError as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"{len(self.config.streams)} stream(s) reachable")

    def discover(self) -> Catalog:
        """Schemas inferred from the first ``sample_pages`` pages of each stream."""
        return Catalog(tuple(self._discover(cfg) for cfg in self.config.streams))

    def _discover(self, cfg: RestStreamConfig) -> Stream:
        typer = PageTyper(cfg.name, {})
        schemas: list[pa.Schema] = []
        pages = records = size = 0
        total: int | None = None
        parent = next(iter(self._parents(cfg)), None)
        if cfg.parent is None or parent is not None:
            for page, _ in self._pages(cfg, self._base(cfg, parent)):
                if total is None and page.index == 0:
                    total = self._paginator(cfg).total(page.data)
                batch, _q = typer.page(page.records or [], page.index + 1, page.exact)
                records += len(page.records or [])
                size += len(page.response.body)
                if batch is not None:
                    schemas.append(self._with_parent_fields(cfg, batch, parent or {}).schema)
                pages += 1
                if pages >= self.config.sample_pages:
                    break
        schema = (
            pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        )
        stream = self._stream_of(cfg, schema, None, total)
        per_record = size / records if records else None
        return replace(
            stream,
            metadata={
                **stream.metadata,
                "sampled_pages": pages,
                "sampled_records": records,
                "bytes_per_record": round(per_record) if per_record else None,
                "estimated_bytes": round(per_record * total) if per_record and total else None,
            },
        )

    def _stream_of(
        self, cfg: RestStreamConfig, schema: pa.Schema, page: Page | None, total: int | None
    ) -> Stream:
        """The stream typed as ``schema``; sizes estimated from ``page`` and the reported
        ``total`` (JSON types are the source-native types)."""
        cursor = (cfg.incremental.cursor_field,) if cfg.incremental else ()
        modes = (
            (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL) if cursor else (SyncMode.FULL_REFRESH,)
        )
        count = len(page.records or []) if page is not None else 0
        size = len(page.response.body) if page is not None else 0
        return Stream(
            name=cfg.name,
            schema=schema,
            primary_key=tuple(cfg.primary_key),
            cursor_candidates=cursor,
            sync_modes=modes,
            metadata={
                "path": cfg.path,
                "parent": cfg.parent,
                "estimated_rows": total,
                "estimated_bytes": round(size / count * total) if count and total else None,
                "declared_types": json_types(schema),
            },
        )

    def _with_parent_fields(
        self, cfg: RestStreamConfig, batch: pa.RecordBatch, parent: dict[str, Any]
    ) -> pa.RecordBatch:
        if not cfg.parent_fields:
            return batch
        arrays, names = list(batch.columns), list(batch.schema.names)
        for column, field in cfg.parent_fields.items():
            arrays.append(pa.repeat(pa.scalar(parent.get(field)), batch.num_rows))
            names.append(column)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield the stream's records page by page (see the module docstring for state)."""
        cfg = self._stream(stream.name)
        state = dict(state or {})
        cursor: _Cursor | None = None
        if cfg.incremental is not None:
            floor = None
            if stream.sync_mode is SyncMode.INCREMENTAL:
                floor = state.get("floor", state.get("cursor", cfg.incremental.initial_value))
            cursor = _Cursor(cfg.incremental.cursor_field, floor)
            if state.get("cursor") is not None and stream.sync_mode is SyncMode.INCREMENTAL:
                cursor.best = state["cursor"]
        typer = PageTyper(cfg.name, dict(stream.column_types))

        def checkpoint(page: int | None = None, nxt: Request | None = None) -> Checkpoint:
            result: dict[str, Any] = {}
            if cursor is not None:
                result["cursor"] = cursor.best
            if nxt is not None:
                result.update({"page": page, "next": nxt.to_state()})
                if cursor is not None:
                    result["floor"] = cursor.floor
            return Checkpoint(result)

        def based(parent: dict[str, Any] | None) -> Request:
            base = self._base(cfg, parent)
            if cursor is not None and cursor.floor is not None:
                assert cfg.incremental is not None
                base = base.with_params(**{cfg.incremental.param: str(cursor.floor)})
            return base

        number = 0
        first: list[Page] = []  # the first page, for the size estimate

        def describe(schema: pa.Schema) -> StreamInfo:
            total = self._paginator(cfg).total(first[0].data) if first else None
            return self._stream_of(cfg, schema, first[0] if first else None, total).info()

        buffer = _Buffer(stream.batch_size, self.config.checkpoint_seconds, describe)
        if cfg.parent is not None:
            for parent, pages, loop in self._child_pages(cfg, based):
                for page in pages:
                    number += 1
                    first[:] = first or [page]
                    buffer.add(self._page_messages(cfg, typer, cursor, page, number, parent))
                if loop is not None:
                    buffer.add([Log("warning", f"stream {cfg.name!r}: {loop}")])
                if buffer.full():
                    yield from buffer.flush()
            yield from buffer.flush()
            yield checkpoint()
            return
        base = based(None)
        start, resume = 0, None
        if state.get("next"):
            start = int(state.get("page") or 0)
            resume = Request.from_state(state["next"], base)
            yield Log("info", f"stream {cfg.name!r}: resuming at page {start + 1}")
        group: list[tuple[Page, int]] = []  # pages typed together (one Arrow parse)
        try:
            for page, nxt in self._pages(cfg, base, start, resume):
                number += 1
                first[:] = first or ([page] if page.index == 0 else [])
                group.append((page, number))
                due = buffer.due()  # once: a checkpoint must follow every page before it
                if nxt is None or due or len(group) >= self.config.concurrency:
                    buffer.add(self._group_messages(cfg, typer, cursor, group))
                    group = []
                if nxt is not None and due:
                    yield from buffer.flush()
                    yield checkpoint(page.index + 1, nxt)
        except _Loop as loop:
            buffer.add([Log("warning", f"stream {cfg.name!r}: {loop}")])
        buffer.add(self._group_messages(cfg, typer, cursor, group))
        yield from buffer.flush()
        yield checkpoint()

    def _child_pages(
        self, cfg: RestStreamConfig, based: Callable[[dict[str, Any] | None], Request]
    ) -> Iterator[tuple[dict[str, Any], list[Page], _Loop | None]]:
        """Every page of a child stream, parents fetched ``concurrency`` at a time, in order."""

        def fetch(parent: dict[str, Any]) -> tuple[dict[str, Any], list[Page], _Loop | None]:
            pages: list[Page] = []
            try:
                pages.extend(page for page, _ in self._pages(cfg, based(parent), width=1))
            except _Loop as loop:
                return parent, pages, loop
            return parent, pages, None

        width = self.config.concurrency
        parents = (p for p in self._parents(cfg) if p is not None)
        with ThreadPoolExecutor(max_workers=width) as pool:
            ahead: deque[Future[tuple[dict[str, Any], list[Page], _Loop | None]]] = deque()
            try:
                for parent in parents:
                    ahead.append(pool.submit(fetch, parent))
                    if len(ahead) >= width:
                        yield ahead.popleft().result()
                while ahead:
                    yield ahead.popleft().result()
            finally:
                for future in ahead:
                    future.cancel()

    def _group_messages(
        self,
        cfg: RestStreamConfig,
        typer: PageTyper,
        cursor: _Cursor | None,
        group: list[tuple[Page, int]],
    ) -> list[Message]:
        """Messages of consecutive root-stream pages, typed together when none failed."""
        if len(group) < 2 or any(page.error is not None for page, _ in group):
            return [
                m
                for page, number in group
                for m in self._page_messages(cfg, typer, cursor, page, number, None)
            ]
        batches, quarantined = typer.pages([(p.records or [], n, p.exact) for p, n in group])
        out: list[Message] = [quarantined] if quarantined is not None else []
        for batch in batches:
            if cursor is not None:
                batch = cursor.apply(batch)
            if batch.num_rows:
                out.append(Records(batch))
        return out

    def _page_messages(
        self,
        cfg: RestStreamConfig,
        typer: PageTyper,
        cursor: _Cursor | None,
        page: Page,
        number: int,
        parent: dict[str, Any] | None,
    ) -> list[Message]:
        return list(self._page_messages_of(cfg, typer, cursor, page, number, parent))

    def _page_messages_of(
        self,
        cfg: RestStreamConfig,
        typer: PageTyper,
        cursor: _Cursor | None,
        page: Page,
        number: int,
        parent: dict[str, Any] | None,
    ) -> Iterator[Message]:
        if page.error is not None:
            yield Quarantined.of(
                [page.error],
                [f"{cfg.name}:page {number}"],
                [page.response.body.decode("utf-8", "backslashreplace")[:10_000]],
            )
            yield Log("warning", f"stream {cfg.name!r}: {page.error}; pagination stopped")
            return
        batch, quarantined = typer.page(page.records or [], number, page.exact)
        if quarantined is not None:
            yield quarantined
        if batch is not None:
            batch = self._with_parent_fields(cfg, batch, parent or {})
            if cursor is not None:
                batch = cursor.apply(batch)
            if batch.num_rows:
                yield Records(batch)


class _Buffer:
    """Pages' messages held back so that the engine gets fewer, larger batches and commits
    at most every ``seconds`` (each commit is a destination transaction): one ``Records``
    of the pages' rows, then their quarantined rows and logs."""

    def __init__(
        self, rows: int, seconds: float, describe: Callable[[pa.Schema], StreamInfo]
    ) -> None:
        self.describe: Callable[[pa.Schema], StreamInfo] | None = describe
        self.rows = rows
        self.seconds = seconds
        self.batches: list[pa.RecordBatch] = []
        self.others: list[Message] = []
        self.count = 0
        self.flushed = time.monotonic()

    def add(self, messages: list[Message]) -> None:
        """Hold ``messages`` until the next flush."""
        for message in messages:
            if isinstance(message, Records):
                self.batches.append(message.batch)
                self.count += message.batch.num_rows
            else:
                self.others.append(message)

    def full(self) -> bool:
        """Enough rows held for one batch."""
        return self.count >= self.rows

    def due(self) -> bool:
        """Time for a checkpoint (or enough rows held)."""
        return self.full() or time.monotonic() - self.flushed >= self.seconds

    def flush(self) -> Iterator[Message]:
        """The held messages, rows combined into as few batches as their schemas allow; the
        stream's :class:`StreamInfo` before the first rows."""
        if self.describe is not None and self.batches:
            yield self.describe(self.batches[0].schema)
            self.describe = None
        if len(self.batches) == 1:
            yield Records(self.batches[0])
        elif self.batches:
            tables = [pa.Table.from_batches([b]) for b in self.batches]
            try:
                combined = pa.concat_tables(tables, promote_options="permissive").combine_chunks()
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # pages typed differently: the engine's schema policy decides, page by page
                combined = None
            for batch in combined.to_batches() if combined is not None else self.batches:
                yield Records(batch)
        yield from self.others
        self.batches, self.others, self.count = [], [], 0
        self.flushed = time.monotonic()


class _Loop(Exception):
    """A pagination loop: the next request was already sent in this pass."""

    def __str__(self) -> str:
        return f"pagination loop detected at {self.args[0]}; stopped"


__all__ = ["RestSource"]
