"""PostgreSQL as a trace store: one row per trace, its bytes plus indexed facts.

:class:`PostgresSink` is the recorder's sink: a finished trace goes into a bounded in-memory
queue and a background thread writes batches to the database, so a handler never waits for the
network. When the database is down the queue holds traces until it is full; further traces are
dropped and counted (``sink.stats``), and the handler's result is never affected. (The queue and
thread live in this module: the recorder hands the sink whole finished traces through
``open``/``write``/``close``, whichever thread it calls them on.)

:class:`PostgresStore` answers the store commands (list, fetch, prune, import). The schema is
specified in ``protocol/trace-store.md``. Requires the ``postgres`` extra (psycopg 3).
"""

from __future__ import annotations

import atexit
import builtins  # the stores' list() method shadows the type inside the class
import collections
import dataclasses
import datetime as _dt
import logging
import socket
import threading
import time
from typing import Any

from ..recorder import TraceInfo, _close_all_at_exit
from ..store_url import mask_password
from . import AmbiguousId, Query, StoreError, TraceNotFound, TraceSummary, summarize
from .directory import check_id_prefix

__all__ = ["PostgresSink", "PostgresStore", "SinkStats", "SCHEMA"]

log = logging.getLogger("prodture.stores")

TABLE = "prodture_traces"
SCHEMA_VERSION = 1

#: The schema, created on first use (idempotent; serialised by an advisory lock so that many
#: hosts starting at once do not race). Specified in protocol/trace-store.md.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    trace_id       text PRIMARY KEY,
    handler        text NOT NULL,
    service        text NOT NULL DEFAULT '',
    host           text NOT NULL DEFAULT '',
    started_at     timestamptz NOT NULL,
    duration_ms    double precision,
    ok             boolean,
    error_type     text NOT NULL DEFAULT '',
    error_message  text NOT NULL DEFAULT '',
    failed_effect  integer,
    effect_count   integer NOT NULL DEFAULT 0,
    size_bytes     integer NOT NULL,
    otel_trace_id  text NOT NULL DEFAULT '',
    otel_span_id   text NOT NULL DEFAULT '',
    stored_at      timestamptz NOT NULL DEFAULT now(),
    data           bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_started ON {TABLE} (started_at DESC);
CREATE INDEX IF NOT EXISTS {TABLE}_failed ON {TABLE} (started_at DESC) WHERE ok = false;
CREATE INDEX IF NOT EXISTS {TABLE}_handler ON {TABLE} (handler, started_at DESC);
CREATE INDEX IF NOT EXISTS {TABLE}_otel ON {TABLE} (otel_trace_id) WHERE otel_trace_id <> '';
CREATE INDEX IF NOT EXISTS {TABLE}_id_prefix ON {TABLE} (trace_id text_pattern_ops);
COMMENT ON TABLE {TABLE} IS 'prodture trace store, schema version {SCHEMA_VERSION}';
"""

_COLUMNS = (
    "trace_id, handler, service, host, started_at, duration_ms, ok, error_type, error_message, "
    "failed_effect, effect_count, size_bytes, otel_trace_id, otel_span_id"
)
_INSERT = (
    f"INSERT INTO {TABLE} ({_COLUMNS}, data) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (trace_id) DO NOTHING"
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg 3: pip install 'prodture[postgres]'"
        ) from None
    return psycopg


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return mask_password(lines[0] if lines else type(error).__name__)


def connect(url: str, *, timeout: float = 5.0) -> Any:
    """A psycopg connection, or :class:`StoreError` in one line with the password masked."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(
            url, connect_timeout=max(1, int(timeout)), application_name="prodture"
        )
    except Exception as e:
        raise StoreError(
            f"cannot reach the trace store {mask_password(url)}: {_reason(e)}"
        ) from None


def ensure_schema(conn: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
        conn.execute(SCHEMA)


def _row(summary: TraceSummary, data: bytes) -> tuple[Any, ...]:
    started = summary.started_at or _dt.datetime.now(_dt.timezone.utc)
    return (
        summary.trace_id,
        summary.handler,
        summary.service,
        summary.host,
        started,
        summary.duration_ms,
        summary.ok,
        summary.error_type[:2000],
        summary.error_message[:2000],
        summary.failed_effect,
        summary.effect_count,
        len(data),
        summary.otel_trace_id,
        summary.otel_span_id,
        data,
    )


def _summary(row: tuple[Any, ...]) -> TraceSummary:
    return TraceSummary(
        trace_id=row[0],
        handler=row[1],
        service=row[2],
        host=row[3],
        started_at=row[4],
        duration_ms=row[5],
        ok=row[6],
        error_type=row[7],
        error_message=row[8],
        failed_effect=row[9],
        effect_count=row[10],
        size=row[11],
        otel_trace_id=row[12],
        otel_span_id=row[13],
    )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PostgresStore:
    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        self.location = mask_password(url)
        self.conn = connect(url)
        self.conn.autocommit = True
        try:
            if create:
                ensure_schema(self.conn)
            elif not self._has_table():
                raise StoreError(
                    f"{self.location} holds no trace store yet (table {TABLE}); record into it "
                    "with PostgresSink or run 'prodture import DIR' first"
                )
        except Exception:
            self.conn.close()
            raise

    def _has_table(self) -> bool:
        return self.conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is not None

    def _query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except Exception as e:
            raise StoreError(f"trace store {self.location}: {_reason(e)}") from None

    def list(self, query: Query) -> list[TraceSummary]:
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        if query.failed_only:
            where.append("ok = false")
        if query.handler:
            where.append("handler LIKE %s")
            params.append(f"%{_like(query.handler)}%")
        if query.since:
            where.append("started_at >= %s")
            params.append(query.since)
        if query.error:
            where.append("(error_type ILIKE %s OR error_message ILIKE %s)")
            params += [f"%{_like(query.error)}%"] * 2
        if query.otel_trace_id:
            where.append("otel_trace_id = %s")
            params.append(query.otel_trace_id.lower())
        sql = f"SELECT {_COLUMNS} FROM {TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC LIMIT %s"
        params.append(max(1, int(query.limit)))
        return [_summary(r) for r in self._query(sql, params)]

    def fetch(self, id_or_prefix: str) -> tuple[TraceSummary, bytes]:
        prefix = check_id_prefix(id_or_prefix)
        rows = self._query(
            f"SELECT {_COLUMNS}, data FROM {TABLE} WHERE trace_id = %s", (prefix,)
        ) or self._query(
            f"SELECT {_COLUMNS}, NULL FROM {TABLE} WHERE trace_id LIKE %s "
            "ORDER BY started_at DESC LIMIT 21",
            (_like(prefix) + "%",),
        )
        if not rows:
            raise TraceNotFound(f"no trace with id {prefix!r} in {self.location}")
        if len(rows) > 1:
            raise AmbiguousId(prefix, [_summary(r) for r in rows[:20]], more=len(rows) > 20)
        data = rows[0][-1]
        if data is None:
            data = self._query(f"SELECT data FROM {TABLE} WHERE trace_id = %s", (rows[0][0],))[0][0]
        return _summary(rows[0]), bytes(data)

    def put_many(self, traces: builtins.list[tuple[TraceSummary, bytes]]) -> int:
        if not traces:
            return 0
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(_INSERT, [_row(s, d) for s, d in traces])
                inserted = cur.rowcount  # summed over the batch; a conflict inserts nothing
        except Exception as e:
            raise StoreError(f"trace store {self.location}: {_reason(e)}") from None
        return int(inserted)

    def prune(self, older_than: _dt.timedelta) -> int:
        cutoff = _dt.datetime.now(_dt.timezone.utc) - older_than
        try:
            cur = self.conn.execute(f"DELETE FROM {TABLE} WHERE started_at < %s", (cutoff,))
        except Exception as e:
            raise StoreError(f"trace store {self.location}: {_reason(e)}") from None
        return int(cur.rowcount)

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# The sink


@dataclasses.dataclass
class SinkStats:
    written: int = 0  # traces committed to the database
    dropped: int = 0  # traces dropped because the queue was full
    write_errors: int = 0  # failed connection or write attempts (the batch is retried)
    queued: int = 0  # traces waiting now (queue and the batch being written)
    last_error: str = ""


class _BufferStream:
    __slots__ = ("sink", "info", "chunks")

    def __init__(self, sink: PostgresSink, info: TraceInfo) -> None:
        self.sink, self.info = sink, info
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.sink._enqueue(self.info, b"".join(self.chunks))

    def abort(self) -> None:
        """The recorder's writer failed mid-trace: nothing of this trace is stored."""
        self.chunks.clear()


class PostgresSink:
    """A recorder sink that stores each finished trace in PostgreSQL, off the handler's thread.

    ``max_queue`` traces (and at most ``max_queue_bytes``) wait while the database is slow or
    down; beyond that a trace is dropped and counted in ``stats.dropped``. ``service`` and
    ``host`` (default: this machine's name) are stored with each trace unless its header ``meta``
    names them. ``flush(timeout)`` waits until everything queued is written; ``close()`` flushes
    and stops the writer thread.
    """

    def __init__(
        self,
        url: str,
        *,
        service: str = "",
        host: str | None = None,
        max_queue: int = 10_000,
        max_queue_bytes: int = 256 * 1024 * 1024,
        batch_size: int = 200,
        retry_seconds: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        _psycopg()  # fail at construction, not in the background, when psycopg is missing
        self.url = url
        self.location = mask_password(url)
        self.service = service
        self.host = socket.gethostname() if host is None else host
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        self._stats = SinkStats()
        self._queue: collections.deque[tuple[TraceInfo, bytes]] = collections.deque()
        self._queued_bytes = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._last_warning = 0.0
        # At interpreter exit, give queued traces a few seconds to reach the store.
        atexit.register(self._close_at_exit)

    def __repr__(self) -> str:
        return f"PostgresSink({self.location!r})"

    def _close_at_exit(self) -> None:
        # atexit runs this before the recorders' own exit flush (registered earlier, when
        # prodture.recorder was imported): let them hand over their pending traces first.
        _close_all_at_exit()
        self.close(timeout=5.0)

    @property
    def stats(self) -> SinkStats:
        with self._cond:
            return dataclasses.replace(self._stats, queued=len(self._queue) + self._in_flight)

    def open(self, info: TraceInfo) -> _BufferStream:
        return _BufferStream(self, info)

    def _enqueue(self, info: TraceInfo, data: bytes) -> None:
        with self._cond:
            if self._closing:
                self._drop_locked("the sink is closed")
                return
            if (
                len(self._queue) + self._in_flight >= self.max_queue
                or self._queued_bytes + len(data) > self.max_queue_bytes
            ):
                self._drop_locked("the queue is full (the store is slow or down)")
                return
            self._queue.append((info, data))
            self._queued_bytes += len(data)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="prodture-pg-sink", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _drop_locked(self, why: str) -> None:
        self._stats.dropped += 1
        now = time.monotonic()
        if now - self._last_warning > 10:  # one warning per 10 s, not one per trace
            self._last_warning = now
            log.warning(
                "prodture: trace dropped, %s: %s (%d dropped so far); handlers are unaffected",
                why,
                self.location,
                self._stats.dropped,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued trace is written; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is None else min(left, 0.5))
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return flushed

    # -- the writer thread -----------------------------------------------------------------

    def _take(self) -> list[tuple[TraceInfo, bytes]] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            batch: list[tuple[TraceInfo, bytes]] = []
            while self._queue and len(batch) < self.batch_size:
                item = self._queue.popleft()
                self._queued_bytes -= len(item[1])
                batch.append(item)
            self._in_flight = len(batch)
            return batch

    def _done(self, batch: list[tuple[TraceInfo, bytes]], ok: bool) -> None:
        with self._cond:
            if ok:
                self._stats.written += len(batch)
            else:  # back to the front, in order, to retry once the store answers
                self._queue.extendleft(reversed(batch))
                self._queued_bytes += sum(len(d) for _i, d in batch)
            self._in_flight = 0
            self._cond.notify_all()

    def _summaries(self, batch: list[tuple[TraceInfo, bytes]]) -> list[tuple[TraceSummary, bytes]]:
        rows = []
        for info, data in batch:
            try:
                summary = summarize(data, service=self.service, host=self.host)
            except Exception:  # not readable back: keep the bytes, index what the recorder knew
                summary = TraceSummary(
                    trace_id=info.trace_id,
                    handler=info.handler,
                    started_at=info.started_at,
                    duration_ms=None,
                    ok=None,
                    size=len(data),
                    service=self.service,
                    host=self.host,
                )
            rows.append((summary, data))
        return rows

    def _run(self) -> None:
        conn = None
        delay = self.retry_seconds[0]
        while True:
            batch = self._take()
            if batch is None:
                break
            rows = self._summaries(batch)
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url)
                    conn.autocommit = True
                    ensure_schema(conn)
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(_INSERT, [_row(s, d) for s, d in rows])
            except Exception as e:
                with self._cond:
                    self._stats.write_errors += 1
                    self._stats.last_error = _reason(e)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                self._done(batch, ok=False)
                deadline = time.monotonic() + delay
                with (
                    self._cond
                ):  # wait before retrying (new traces do not hurry it; close() ends it)
                    while not self._closing and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)
                    closing = self._closing
                delay = min(delay * 2, self.retry_seconds[1])
                if closing:
                    break
                continue
            delay = self.retry_seconds[0]
            self._done(batch, ok=True)
        if conn is not None:
            conn.close()
