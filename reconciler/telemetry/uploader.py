"""Moving the outbox into PostgreSQL without losing or doubling a row.

One batch: read the oldest rows, quarantine any that do not parse, write the rest (in-order
readings COPY straight into their tables, everything else through staging tables and
INSERT ... ON CONFLICT DO NOTHING, see ingest.py), COMMIT in PostgreSQL, and only then
delete the batch from the outbox. A crash between the commit and the delete re-sends the
batch next time, which the unique keys make harmless. Connection failures are retried
with exponential backoff (tenacity); when the retries run out the rows simply stay.
A row the database rejects as data (bad value) is isolated by splitting the batch and
quarantined with the database's message, so one bad row never blocks the rest.

A silent partition never holds anything up for long. Connects and statements have
timeouts (database.py) and each attempt a deadline of its own, after which its socket is
shut down under it. A call can be aborted (:meth:`Uploader.abort`): its retries stop and
its sockets are shut down, so a stopping agent does not wait for the network; and
:meth:`Uploader.drain_async` runs a drain in a daemon thread that the caller stops
waiting for when asked to stop or when its time budget is spent. Whatever was not
confirmed stays in the outbox for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from reconciler.logs import log_event
from reconciler.redact import redact
from reconciler.telemetry import ingest, rollups
from reconciler.telemetry.database import CONNECT_TIMEOUT_S, connect, describe
from reconciler.telemetry.errors import DatabaseUnreachable, TelemetryError
from reconciler.telemetry.migrations import require_current
from reconciler.telemetry.outbox import DeviceRows, Outbox, OutboxCondition
from reconciler.telemetry.records import (
    DECODERS,
    READING_KINDS,
    MalformedRecord,
    reading_line,
)
from reconciler.telemetry.rollups import Source

DEFAULT_BATCH = 20_000
#: Server-side limit of one upload statement, s (a 20,000-row batch takes well under 1 s).
STATEMENT_TIMEOUT_S = 60.0
#: The rollup refresh may legitimately take longer (a long backlog, other sites' refreshes
#: ahead of it), s.
REFRESH_TIMEOUT_S = 600.0
#: Client-side deadline of one attempt (connect and every statement of a batch), s.
ATTEMPT_TIMEOUT_S = 120.0
Item = ingest.Item
T = TypeVar("T")

log = logging.getLogger("flux.telemetry")


@dataclass(frozen=True)
class UploadResult:
    """What one call achieved. ``error`` is set when the database could not be written
    (the rows stay in the outbox); ``sent`` counts rows confirmed and removed locally,
    ``inserted`` those that were new in the database (the rest were re-sends)."""

    sent: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    remaining: int = 0
    error: str | None = None
    refreshed_hours: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


@dataclass
class UploaderState:
    """What the agent's status shows about telemetry."""

    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    failures_total: int = 0
    refresh_error: str | None = None  # the rollups lag (the rows themselves are in)
    sent_total: int = 0
    quarantined_total: int = 0


@dataclass(frozen=True)
class _Prepared:
    """A batch read from the outbox (ids after_id+1..last_id): well-framed readings per
    kind (staged only if needed), other rows staged per kind, and the direct form of the
    reading kinds that allow it (every row of the kind, see ingest.Direct)."""

    after_id: int
    last_id: int | None
    readings: dict[str, list[DeviceRows]]
    slow: dict[str, list[Item]]
    bad: list[tuple[int, str]]
    keys: set[tuple[str, str, str]]
    direct: dict[str, ingest.Direct] = field(default_factory=dict)
    # Per reading kind, the oldest and newest instant (microseconds): the rollups' range.
    spans: dict[Source, tuple[int, int]] = field(default_factory=dict)

    @property
    def kinds(self) -> set[str]:
        return set(self.readings) | set(self.slow)

    def staged(self, kind: str) -> list[Item]:
        return ingest.staging_items(self.readings.get(kind, ())) + self.slow.get(kind, [])


class Uploader:
    """Uploads an :class:`Outbox` to the database at ``database_url``.

    With ``database_url=None`` (the embedded default) nothing is uploaded and everything
    stays in the outbox. ``attempts``/``wait_initial_s``/``wait_max_s`` shape the retries
    of one call; :meth:`run` keeps going across failures, forever. ``connect_timeout_s``,
    ``statement_timeout_s`` and ``attempt_timeout_s`` bound the waits on the network (s).
    """

    def __init__(
        self,
        outbox: Outbox,
        database_url: str | None,
        *,
        batch_size: int = DEFAULT_BATCH,
        attempts: int = 5,
        wait_initial_s: float = 0.5,
        wait_max_s: float = 30.0,
        refresh_rollups: bool = True,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        statement_timeout_s: float = STATEMENT_TIMEOUT_S,
        attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.outbox = outbox
        self.database_url = database_url
        self.batch_size = batch_size
        self.attempts = max(1, attempts)
        self.wait_initial_s = wait_initial_s
        self.wait_max_s = wait_max_s
        self.refresh_rollups = refresh_rollups
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self.state = UploaderState()
        self._conn: psycopg.Connection[Any] | None = None
        self._refresh_conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()
        # The running call's abort signal (a fresh one per call, so aborting a call that
        # is being abandoned cannot stop the next one).
        self._cancel = threading.Event()
        self._close_when_done = False
        # TimescaleDB: the ranges uploaded since the last refresh (microseconds per
        # source), and whether this role may refresh the aggregates (None: not asked yet).
        self._flavour: str | None = None
        self._unrolled: dict[Source, tuple[int, int]] = {}
        self._unrolled_lock = threading.Lock()
        self._owns_rollups: bool | None = None

    # ------------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._close_main()
        assert self.database_url is not None
        conn = connect(
            self.database_url,
            timeout_s=self.connect_timeout_s,
            statement_timeout_s=self.statement_timeout_s,
        )
        self._conn = conn  # from now on, a deadline or an abort can shut it down
        try:
            self._flavour = require_current(conn).flavour
            # Room to sort a batch in memory (the meter deltas' window) instead of on disk.
            conn.execute("SET work_mem = '64MB'")
            ingest.ensure_staging(conn)
            conn.commit()
        except BaseException:
            self._close_main()
            raise
        return conn

    def close(self) -> None:
        """Close the connections; if a call is still running (an abandoned one, see
        :meth:`drain_async`), that call closes them when it ends instead: a connection is
        never closed under a thread that is using it."""
        if not self._lock.acquire(blocking=False):
            self._close_when_done = True
            return
        try:
            self._close_all()
        finally:
            self._lock.release()

    def _close_all(self) -> None:
        try:
            self._close_main()
        finally:
            self._close_refresh()

    # ------------------------------------------------------------------ stopping

    def abort(self, cancel: threading.Event | None = None) -> None:
        """Stop a running call now: no more retries or batches, and the sockets it waits
        on are shut down (the wait ends with an error at once). ``cancel`` is the call's
        own signal (see :meth:`drain_async`); by default the running call's."""
        (cancel or self._cancel).set()
        for conn in (self._conn, self._refresh_conn):
            _shut_down(conn)

    @contextlib.contextmanager
    def _deadline(
        self, seconds: float, conn: Callable[[], psycopg.Connection[Any] | None]
    ) -> Iterator[list[bool]]:
        """Shut the connection's socket down if the block takes longer than ``seconds``:
        what a silent partition needs, where neither side ever reports an error. The
        yielded flag tells whether it fired."""
        fired: list[bool] = []

        def expire() -> None:
            fired.append(True)
            _shut_down(conn())

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            yield fired
        finally:
            timer.cancel()

    def _close_main(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def conditions(self) -> dict[str, Any]:
        """The telemetry part of the agent status (JSON-serialisable)."""
        c: OutboxCondition = self.outbox.condition()
        s = self.state
        return {
            "database": describe(self.database_url) if self.database_url else None,
            "pending": c.pending,
            "max_rows": c.max_rows,
            "backlog_over_limit": c.over_limit,
            "quarantined": c.quarantined,
            "message": c.message,
            "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
            "last_error": s.last_error,
            "consecutive_failures": s.consecutive_failures,
        }

    # ------------------------------------------------------------------ one batch

    def upload_once(
        self, *, refresh: bool = True, cancel: threading.Event | None = None
    ) -> UploadResult:
        """Upload the oldest batch (with retries), then refresh the rollups unless told
        not to. Never raises for database trouble, nor for the outbox's (a locked or
        unwritable file is a failed call, retried later)."""
        if self.database_url is None:
            return UploadResult(remaining=self.outbox.pending())
        with self._lock, self._running(cancel):
            try:
                result = self._upload(self._prepare(None), refresh=refresh)
            except sqlite3.Error as exc:
                result = self._outbox_failed(exc)
            return replace(result, remaining=self.outbox.pending())

    @contextlib.contextmanager
    def _running(self, cancel: threading.Event | None) -> Iterator[threading.Event]:
        """Inside the lock: make ``cancel`` the running call's signal; after it, close the
        connections if :meth:`close` was called meanwhile."""
        self._cancel = cancel or threading.Event()
        try:
            yield self._cancel
        finally:
            if self._close_when_done:
                self._close_when_done = False
                self._close_all()

    def _outbox_failed(self, exc: sqlite3.Error) -> UploadResult:
        message = f"the outbox {self.outbox.path}: {exc}"
        self._failed(message)
        return UploadResult(error=message, remaining=self.outbox.pending())

    def _prepare(self, after_id: int | None) -> _Prepared:
        """Read and stage the next batch (safe to run in another thread)."""
        batch = self.outbox.read_batch(self.batch_size, after_id=after_id)
        slow: dict[str, list[Item]] = {}
        direct: dict[str, ingest.Direct] = {}
        for kind, readings in batch.readings.items():
            straight = ingest.direct_rows(kind, readings)
            if straight is not None:
                direct[kind] = straight
        keys = set(batch.keys)
        bad: list[tuple[int, str]] = []
        for row_id, kind, site_id, device, payload in batch.others:
            try:
                item, key = _stage_slowly(kind, site_id, device, payload)
            except MalformedRecord as exc:
                bad.append((row_id, str(exc)))
                continue
            slow.setdefault(kind, []).append((row_id, item))
            keys.add(key)
            direct.pop(kind, None)  # the direct form must hold every row of its kind
        start = after_id if after_id is not None else -1
        spans = _reading_spans(batch.readings, slow, direct)
        return _Prepared(start, batch.last_id, batch.readings, slow, bad, keys, direct, spans)

    def _upload(
        self,
        batch: _Prepared,
        *,
        refresh: bool,
        confirm: Callable[[int, int], object] | None = None,
    ) -> UploadResult:
        """Send one batch; ``confirm`` (default: the outbox's) forgets it locally after
        the commit."""
        if batch.last_id is None:
            return UploadResult()
        quarantined = self.outbox.quarantine(batch.bad)
        if self._cancel.is_set():
            return UploadResult(quarantined=quarantined, error=STOPPED)
        try:
            sent, inserted, rejected = self._send_with_retries(batch)
        except (TelemetryError, psycopg.Error) as exc:
            self._close_main()
            if self._cancel.is_set():  # aborted: not the database's fault
                return UploadResult(quarantined=quarantined, error=STOPPED)
            message = self._message(exc)
            self._failed(message)
            return UploadResult(quarantined=quarantined, error=message)
        # Committed in PostgreSQL: now (and only now) forget them locally.
        quarantined += self.outbox.quarantine(rejected)
        (confirm or self.outbox.confirm)(batch.after_id + 1, batch.last_id)
        if batch.spans and self.refresh_rollups:
            with self._unrolled_lock:
                rollups.merge_us(self._unrolled, batch.spans)
        refreshed = self._refresh() if refresh else 0
        self._succeeded(sum(sent.values()), quarantined)
        return UploadResult(
            sent=sent, inserted=inserted, quarantined=quarantined, refreshed_hours=refreshed
        )

    def drain(
        self, *, max_batches: int | None = None, cancel: threading.Event | None = None
    ) -> UploadResult:
        """Upload batches, oldest first, until the outbox is empty, an error, or
        ``max_batches``. Rows added meanwhile are picked up in later batches. When it
        returns, the rollups cover every row it committed.

        Helper threads keep the database busy. One reads and stages the next batch while
        the current one is written (it is only read, so a failure simply discards it).
        One deletes committed batches from the outbox. One refreshes the rollups on its
        own connection while batches go on, starting again once a refresh is done if
        batches committed meanwhile (so a long backlog refreshes about as often as a
        refresh takes, never per batch); on TimescaleDB once, at the end, over every range
        uploaded.

        ``cancel`` set (see :meth:`abort`) ends it after the current step. Never raises
        for database or outbox trouble.
        """
        if self.database_url is None:
            return UploadResult(remaining=self.outbox.pending())
        with self._lock, self._running(cancel):
            try:
                return self._drain(max_batches)
            except sqlite3.Error as exc:
                return self._outbox_failed(exc)

    def _drain(self, max_batches: int | None) -> UploadResult:
        sent: dict[str, int] = defaultdict(int)
        inserted: dict[str, int] = defaultdict(int)
        quarantined = refreshed = batches = 0
        error: str | None = None
        refreshing: Future[int] | None = None
        stale = False
        confirms: list[Future[int]] = []
        with (
            ThreadPoolExecutor(1, thread_name_prefix="flux-outbox") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="flux-confirm") as deleter,
            ThreadPoolExecutor(1, thread_name_prefix="flux-rollups") as rollups,
        ):

            def confirm(first: int, last: int) -> None:
                confirms.append(deleter.submit(self.outbox.confirm, first, last))

            upcoming: Future[_Prepared] = pool.submit(self._prepare, None)
            while max_batches is None or batches < max_batches:
                if self._cancel.is_set():
                    error = STOPPED
                    break
                batch = upcoming.result()
                if batch.last_id is None:
                    break
                upcoming = pool.submit(self._prepare, batch.last_id)
                result = self._upload(batch, refresh=False, confirm=confirm)
                batches += 1
                for k, n in result.sent.items():
                    sent[k] += n
                for k, n in result.inserted.items():
                    inserted[k] += n
                quarantined += result.quarantined
                if result.total_sent > 0 and self.refresh_rollups:
                    stale = True
                    # TimescaleDB: one refresh at the end, over every range uploaded. A
                    # refresh recomputes whole buckets of every device, so refreshing
                    # while a backlog of several devices over the same months drains
                    # would recompute those months once per device.
                    if self._flavour != "timescale" and (refreshing is None or refreshing.done()):
                        refreshed += refreshing.result() if refreshing else 0
                        refreshing = rollups.submit(self._refresh, apart=True)
                        stale = False
                if not result.ok:
                    error = result.error
                    break
            upcoming.cancel()
            for done in confirms:
                done.result()
            refreshed += refreshing.result() if refreshing else 0
            if stale and not self._cancel.is_set():
                refreshed += rollups.submit(self._refresh, apart=True).result()
        return UploadResult(
            dict(sent), dict(inserted), quarantined, self.outbox.pending(), error, refreshed
        )

    async def drain_async(
        self, *, stop: asyncio.Event | None = None, budget_s: float | None = None
    ) -> UploadResult:
        """:meth:`drain` in a daemon thread, awaited until it ends, ``stop`` is set or
        ``budget_s`` (s) is spent. In the last two cases the drain is aborted and not
        waited for (a connect in progress ends by its own timeout, then the thread
        finishes on its own): the result says so and what stays in the outbox."""
        if self.database_url is None:
            return UploadResult(remaining=self.outbox.pending())
        cancel = threading.Event()
        work = _in_daemon_thread(lambda: self.drain(cancel=cancel), "flux-upload")
        waits: set[asyncio.Future[Any]] = {work}
        stopping: asyncio.Task[bool] | None = None
        if stop is not None:
            stopping = asyncio.ensure_future(stop.wait())
            waits.add(stopping)
        try:
            await asyncio.wait(waits, timeout=budget_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopping is not None:
                stopping.cancel()
        if work.done():
            return work.result()
        self.abort(cancel)
        if stop is not None and stop.is_set():
            why = STOPPED
        else:
            why = f"gave up after {budget_s:g} s: the database did not answer in time"
        return UploadResult(error=why, remaining=self.outbox.pending())

    async def run(
        self,
        stop_event: asyncio.Event,
        *,
        interval_s: float = 10.0,
        on_result: Callable[[UploadResult], object] | None = None,
    ) -> None:
        """Drain every ``interval_s`` until ``stop_event`` is set; after a failure wait
        with exponential backoff (up to ``wait_max_s``) and try again. Never gives up.
        A drain in progress when ``stop_event`` is set is aborted, not waited for.
        ``on_result`` sees each round's result (on the event loop)."""
        delay = interval_s
        while not stop_event.is_set():
            result = await self.drain_async(stop=stop_event)
            if on_result is not None:
                on_result(result)
            if result.ok:
                delay = interval_s
            else:
                failures = self.state.consecutive_failures
                delay = min(self.wait_max_s, max(interval_s, self.wait_initial_s * 2**failures))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=delay)

    # ------------------------------------------------------------------ internals

    def _failed(self, message: str) -> None:
        """Record a failure; the first of a run of failures is logged as a warning (not
        each one: the status carries the count)."""
        now = datetime.now(UTC)
        with self._state_lock:
            s = self.state
            s.last_error = message
            s.last_error_at = now
            s.consecutive_failures += 1
            s.failures_total += 1
            first = s.consecutive_failures == 1
            if first:
                s.failing_since = now
        if first:
            log_event(
                log,
                "telemetry_upload_failing",
                level=logging.WARNING,
                database=self._where(),
                error=message,
                pending=self.outbox.pending(),
            )

    def _succeeded(self, sent: int, quarantined: int) -> None:
        now = datetime.now(UTC)
        with self._state_lock:
            s = self.state
            failures, since = s.consecutive_failures, s.failing_since
            s.last_success_at = now
            s.consecutive_failures = 0
            s.failing_since = None
            s.sent_total += sent
            s.quarantined_total += quarantined
        if failures:
            log_event(
                log,
                "telemetry_upload_recovered",
                database=self._where(),
                failures=failures,
                failing_s=round((now - since).total_seconds(), 1) if since else None,
                pending=self.outbox.pending(),
            )

    def _where(self) -> str | None:
        return describe(self.database_url) if self.database_url else None

    def _message(self, exc: BaseException) -> str:
        return redact(_message(exc), self.database_url)

    def _send_with_retries(
        self, batch: _Prepared
    ) -> tuple[dict[str, int], dict[str, int], list[tuple[int, str]]]:
        cancel = self._cancel

        def pause(seconds: float) -> None:
            cancel.wait(seconds)  # an abort cuts the wait between attempts short

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_when_event_set(cancel),
            wait=wait_exponential(multiplier=self.wait_initial_s, max=self.wait_max_s),
            retry=retry_if_exception_type((psycopg.OperationalError, DatabaseUnreachable)),
            sleep=pause,
            reraise=True,
        )
        for attempt in retrying:
            with attempt, self._deadline(self.attempt_timeout_s, lambda: self._conn) as fired:
                try:
                    return self._send(batch)
                except psycopg.OperationalError as exc:
                    self._close_main()
                    if fired:
                        raise DatabaseUnreachable(
                            f"the database {self._where()} did not answer within "
                            f"{self.attempt_timeout_s:g} s ({self._message(exc)})"
                        ) from None
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _send(
        self, batch: _Prepared
    ) -> tuple[dict[str, int], dict[str, int], list[tuple[int, str]]]:
        """Commit every row the database accepts; return rows it rejected as data."""
        conn = self._connection()
        try:
            try:
                with conn.transaction():
                    direct = {k for k, d in batch.direct.items() if ingest.copy_direct(conn, k, d)}
                    rest = {k: [r for _, r in batch.staged(k)] for k in batch.kinds - direct}
                    counts = ingest.write_batch(conn, rest, batch.keys)
                for k in direct:
                    counts.sent[k] = counts.inserted[k] = len(batch.direct[k].lines)
            except psycopg.errors.UniqueViolation:
                with conn.transaction():
                    rows_by_kind = {k: [r for _, r in batch.staged(k)] for k in batch.kinds}
                    counts = ingest.write_batch(conn, rows_by_kind, batch.keys, safe=True)
            return counts.sent, counts.inserted, []
        except (psycopg.DataError, psycopg.IntegrityError):
            pass
        # Some row is unacceptable: find it by halving, commit the rest piece by piece.
        sent: dict[str, int] = defaultdict(int)
        inserted: dict[str, int] = defaultdict(int)
        rejected: list[tuple[int, str]] = []
        for kind in batch.kinds:
            items = batch.staged(kind)
            keys = {k for k in batch.keys if k[0] == kind}
            self._bisect(conn, kind, items, keys, sent, inserted, rejected)
        return dict(sent), dict(inserted), rejected

    def _bisect(
        self,
        conn: psycopg.Connection[Any],
        kind: str,
        items: Sequence[Item],
        keys: set[tuple[str, str, str]],
        sent: dict[str, int],
        inserted: dict[str, int],
        rejected: list[tuple[int, str]],
    ) -> None:
        try:
            with conn.transaction():
                counts = ingest.write_batch(conn, {kind: [r for _, r in items]}, keys, safe=True)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(items) == 1:
                rejected.append((items[0][0], self._why(kind, items[0][0], exc)))
                return
        else:
            sent[kind] += counts.sent.get(kind, 0)
            inserted[kind] += counts.inserted.get(kind, 0)
            return
        middle = len(items) // 2
        self._bisect(conn, kind, items[:middle], keys, sent, inserted, rejected)
        self._bisect(conn, kind, items[middle:], keys, sent, inserted, rejected)

    def _why(self, kind: str, row_id: int, exc: BaseException) -> str:
        """The quarantine message of a row the database refused: the full local check's
        finding when it has one (clearer), else the database's message."""
        stored = self.outbox.payload(row_id)
        payload = stored[1] if stored else None
        decoder = DECODERS.get(kind)
        if decoder is not None and payload is not None:
            try:
                decoder(payload)
            except MalformedRecord as problem:
                return f"malformed {kind} record: {problem}"
        return f"rejected by the database: {_message(exc)}"

    def _refresh(self, *, apart: bool = False) -> int:
        """Run flux.refresh_rollups() on the upload connection, or ``apart`` on the
        refresher's own one (opened when needed); the device-hours recomputed.

        A failure is not an upload failure (the rows are in; only the rollups lag): it is
        kept in ``state.refresh_error`` and logged when it starts and ends."""
        if not self.refresh_rollups:
            return 0
        try:
            try:
                hours = self._refresh_on(self._refresh_connection() if apart else self._conn)
            except psycopg.OperationalError:
                if not apart or self._cancel.is_set():
                    raise
                # The refresher's connection may have died in an outage the uploads have
                # since recovered from: once more on a new one.
                self._close_refresh()
                hours = self._refresh_on(self._refresh_connection())
        except (TelemetryError, psycopg.Error) as exc:
            # The dirty spans stay recorded: the next batch or `flux db refresh` redoes them.
            if apart:
                self._close_refresh()
            else:
                self._close_main()
            if not self._cancel.is_set():
                self._refresh_failed(f"rollup refresh failed: {self._message(exc)}")
            return 0
        if self.state.refresh_error is not None:
            self.state.refresh_error = None
            log_event(log, "rollup_refresh_recovered", database=self._where())
        return hours

    def _refresh_connection(self) -> psycopg.Connection[Any]:
        conn = self._refresh_conn
        if conn is None or conn.closed or conn.broken:
            assert self.database_url is not None
            conn = self._refresh_conn = connect(self.database_url, timeout_s=self.connect_timeout_s)
        return conn

    def _refresh_on(self, conn: psycopg.Connection[Any] | None) -> int:
        if conn is None:
            return 0
        if self._flavour is None:
            self._flavour = rollups.flavour_of(conn)
            conn.commit()
        if self._flavour == "timescale":
            return self._refresh_ranges(conn)
        limit = REFRESH_TIMEOUT_S
        with self._deadline(limit + self.attempt_timeout_s, lambda: conn), conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {round(limit * 1000)}")
            row = conn.execute("SELECT flux.refresh_rollups()").fetchone()
        return int(str(row[0])) if row and row[0] is not None else 0

    def _refresh_ranges(self, conn: psycopg.Connection[Any]) -> int:
        """TimescaleDB: refresh every aggregate over the ranges uploaded since the last
        refresh (whole hours); the hours refreshed. A role that does not own the
        aggregates (an agent) leaves them to `flux db refresh` and the policies: its
        inserts are recorded as invalidations."""
        with self._unrolled_lock:
            pending, self._unrolled = self._unrolled, {}
        if not pending:
            return 0
        if self._owns_rollups is None:
            self._owns_rollups = rollups.owns_rollups(conn)
            conn.commit()
            if not self._owns_rollups:
                log_event(
                    log,
                    "rollups_left_to_policy",
                    database=self._where(),
                    reason="this role does not own the continuous aggregates: `flux db "
                    "refresh` (as their owner) and TimescaleDB's policies roll the uploads up",
                )
        if not self._owns_rollups:
            return 0
        spans = [rollups.span_of_us(source, lo, hi) for source, (lo, hi) in pending.items()]
        limit = REFRESH_TIMEOUT_S
        try:
            with self._deadline(limit + self.attempt_timeout_s, lambda: conn):
                conn.autocommit = True
                try:
                    conn.execute(f"SET statement_timeout = {round(limit * 1000)}")
                    done = rollups.refresh_timescale(conn, spans)
                finally:
                    if not conn.closed and not conn.broken:
                        conn.execute("RESET statement_timeout")
                        conn.autocommit = False
        except BaseException:
            with self._unrolled_lock:  # done again by the next refresh
                rollups.merge_us(self._unrolled, pending)
            raise
        return sum(r.hours or 0 for r in done if r.name.endswith("_5m"))

    def _close_refresh(self) -> None:
        if self._refresh_conn is not None:
            try:
                self._refresh_conn.close()
            finally:
                self._refresh_conn = None

    def _refresh_failed(self, message: str) -> None:
        first = self.state.refresh_error is None
        self.state.refresh_error = message
        if first:
            log_event(
                log,
                "rollup_refresh_failed",
                level=logging.WARNING,
                database=self._where(),
                error=message,
            )


def _reading_spans(
    readings: dict[str, list[DeviceRows]],
    slow: dict[str, list[Item]],
    direct: dict[str, ingest.Direct],
) -> dict[Source, tuple[int, int]]:
    """Per reading kind, the oldest and newest instant (microseconds) of a batch's rows:
    a well-framed payload starts ``[t_us,``, a staged line's third field is t_us. Rows
    with a direct form are in time order per device: only its ends are read."""
    spans: dict[Source, tuple[int, int]] = {}
    for kind in rollups.SOURCES:
        times: list[int] = []
        in_order = kind in direct
        for group in readings.get(kind, ()):
            rows = (group.rows[0], group.rows[-1]) if in_order and group.rows else group.rows
            for _, payload in rows:
                with contextlib.suppress(ValueError):
                    times.append(int(payload[1 : payload.find(",")]))
        for _, item in slow.get(kind, ()):
            if isinstance(item, str):
                with contextlib.suppress(ValueError, IndexError):
                    times.append(int(item.split("\t", 3)[2]))
        if times:
            spans[kind] = (min(times), max(times))
    return spans


def _stage_slowly(
    kind: str, site_id: object, device: object, payload: object
) -> tuple[ingest.Staged, tuple[str, str, str]]:
    """Check one row fully in Python: a record that is not a well-framed reading, or a
    reading the fast path would not take. Raises MalformedRecord with the reason."""
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise MalformedRecord(f"unknown record kind {kind!r}")
    if type(site_id) is not str or not site_id or type(device) is not str:
        raise MalformedRecord(f"site {site_id!r} / device {device!r} must be text")
    try:
        if kind in READING_KINDS:
            line = ingest.copy_line(site_id, device, reading_line(kind, payload))
            return line, (kind, site_id, device)
        return (site_id, device, decoder(payload)), (kind, site_id, "")
    except MalformedRecord as exc:
        raise MalformedRecord(f"malformed {kind} record: {exc}") from None


STOPPED = "stopped: the agent is stopping; the rows stay in the outbox for next time"


def _message(exc: BaseException) -> str:
    if isinstance(exc, TelemetryError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _shut_down(conn: psycopg.Connection[Any] | None) -> None:
    """Shut down a connection's socket from any thread: a thread waiting on it wakes with
    an error at once (closing the connection under it instead would not be safe)."""
    if conn is None:
        return
    with contextlib.suppress(OSError, psycopg.Error, ValueError):
        fd = conn.pgconn.socket
        # A duplicate descriptor of the same socket: shutdown acts on the socket itself.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


def _in_daemon_thread(work: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``work`` in a new daemon thread; a future of its result on the running loop.

    Not asyncio.to_thread: the loop's executor threads are joined when asyncio.run ends
    and at exit, so an abandoned call stuck on the network would hold the process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
