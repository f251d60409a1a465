"""Moving the outbox into PostgreSQL without losing or doubling a row.

One batch: read the oldest rows, quarantine any that do not parse, COPY the rest into
staging tables and INSERT ... ON CONFLICT DO NOTHING, COMMIT in PostgreSQL, and only then
delete the batch from the outbox. A crash between the commit and the delete re-sends the
batch next time, which the unique keys make harmless. Connection failures are retried
with exponential backoff (tenacity); when the retries run out the rows simply stay.
A row the database rejects as data (bad value) is isolated by splitting the batch and
quarantined with the database's message, so one bad row never blocks the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from reconciler.telemetry import ingest
from reconciler.telemetry.database import connect, describe
from reconciler.telemetry.errors import DatabaseUnreachable, TelemetryError
from reconciler.telemetry.migrations import require_current
from reconciler.telemetry.outbox import Outbox, OutboxCondition, RawRow
from reconciler.telemetry.records import (
    DECODERS,
    READING_KINDS,
    MalformedRecord,
    reading_line,
    reading_lines,
)

DEFAULT_BATCH = 20_000
Item = tuple[int, ingest.Staged]
"""(outbox id, staged row)."""


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
    sent_total: int = 0
    quarantined_total: int = 0


class _DataRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Uploader:
    """Uploads an :class:`Outbox` to the database at ``database_url``.

    With ``database_url=None`` (the embedded default) nothing is uploaded and everything
    stays in the outbox. ``attempts``/``wait_initial_s``/``wait_max_s`` shape the retries
    of one call; :meth:`run` keeps going across failures, forever.
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
        refresh_every_s: float = 10.0,
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
        self.refresh_every_s = refresh_every_s
        self._batch: Sequence[RawRow] = ()
        self.state = UploaderState()
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connection

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self.close()
        assert self.database_url is not None
        conn = connect(self.database_url)
        try:
            require_current(conn)
            ingest.ensure_staging(conn)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def close(self) -> None:
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

    def upload_once(self, *, refresh: bool = True) -> UploadResult:
        """Upload the oldest batch (with retries), then refresh the rollups unless told
        not to. Never raises for database trouble."""
        if self.database_url is None:
            return UploadResult(remaining=self.outbox.pending())
        with self._lock:
            rows = self.outbox.oldest(self.batch_size)
            if not rows:
                return UploadResult(remaining=0)
            self._batch = rows
            by_kind, bad = _decode(rows)
            quarantined = self.outbox.quarantine(bad)
            try:
                sent, inserted, rejected = self._send_with_retries(by_kind)
            except (TelemetryError, psycopg.Error) as exc:
                message = _message(exc)
                self._failed(message)
                self.close()
                return UploadResult(
                    quarantined=quarantined, remaining=self.outbox.pending(), error=message
                )
            # Committed in PostgreSQL: now (and only now) forget them locally.
            quarantined += self.outbox.quarantine(rejected)
            self.outbox.confirm(rows[0][0], rows[-1][0])
            refreshed = self._refresh() if refresh else 0
            self.state.last_success_at = datetime.now(UTC)
            self.state.consecutive_failures = 0
            self.state.sent_total += sum(sent.values())
            self.state.quarantined_total += quarantined
            return UploadResult(
                sent=sent,
                inserted=inserted,
                quarantined=quarantined,
                remaining=self.outbox.pending(),
                refreshed_hours=refreshed,
            )

    def drain(self, *, max_batches: int | None = None) -> UploadResult:
        """Upload batches, oldest first, until the outbox is empty, an error, or
        ``max_batches``. Rows added meanwhile are picked up in later batches."""
        sent: dict[str, int] = defaultdict(int)
        inserted: dict[str, int] = defaultdict(int)
        quarantined = refreshed = batches = 0
        result = UploadResult()
        # A backlog refreshes the rollups every refresh_every_s and once at the end rather
        # than after each batch: the same hours would otherwise be recomputed many times.
        last_refresh = time.monotonic()
        stale = False
        while max_batches is None or batches < max_batches:
            due = time.monotonic() - last_refresh >= self.refresh_every_s
            result = self.upload_once(refresh=due)
            if due:
                last_refresh = time.monotonic()
            stale = (stale and not due) or (result.total_sent > 0 and not due)
            batches += 1
            for k, n in result.sent.items():
                sent[k] += n
            for k, n in result.inserted.items():
                inserted[k] += n
            quarantined += result.quarantined
            refreshed += result.refreshed_hours
            if not result.ok or (result.total_sent == 0 and result.quarantined == 0):
                break
        if stale:
            with self._lock:
                refreshed += self._refresh()
        return UploadResult(
            dict(sent), dict(inserted), quarantined, result.remaining, result.error, refreshed
        )

    async def run(self, stop_event: asyncio.Event, *, interval_s: float = 10.0) -> None:
        """Drain every ``interval_s`` until ``stop_event`` is set; after a failure wait
        with exponential backoff (up to ``wait_max_s``) and try again. Never gives up."""
        delay = interval_s
        while not stop_event.is_set():
            result = await asyncio.to_thread(self.drain)
            if result.ok:
                delay = interval_s
            else:
                failures = self.state.consecutive_failures
                delay = min(self.wait_max_s, max(interval_s, self.wait_initial_s * 2**failures))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=delay)
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------------ internals

    def _failed(self, message: str) -> None:
        self.state.last_error = message
        self.state.last_error_at = datetime.now(UTC)
        self.state.consecutive_failures += 1

    def _send_with_retries(
        self, by_kind: dict[str, list[Item]]
    ) -> tuple[dict[str, int], dict[str, int], list[tuple[int, str]]]:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.wait_initial_s, max=self.wait_max_s),
            retry=retry_if_exception_type((psycopg.OperationalError, DatabaseUnreachable)),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                try:
                    return self._send(by_kind)
                except psycopg.OperationalError:
                    self.close()
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _send(
        self, by_kind: dict[str, list[Item]]
    ) -> tuple[dict[str, int], dict[str, int], list[tuple[int, str]]]:
        """Commit every row the database accepts; return rows it rejected as data."""
        conn = self._connection()
        rows_by_kind = {k: [r for _, r in v] for k, v in by_kind.items()}
        try:
            try:
                with conn.transaction():
                    counts = ingest.write_batch(conn, rows_by_kind)
            except psycopg.errors.UniqueViolation:
                with conn.transaction():
                    counts = ingest.write_batch(conn, rows_by_kind, safe=True)
            return counts.sent, counts.inserted, []
        except (psycopg.DataError, psycopg.IntegrityError):
            pass
        # Some row is unacceptable: find it by halving, commit the rest piece by piece.
        sent: dict[str, int] = defaultdict(int)
        inserted: dict[str, int] = defaultdict(int)
        rejected: list[tuple[int, str]] = []
        for kind, items in by_kind.items():
            self._bisect(conn, kind, items, sent, inserted, rejected)
        return dict(sent), dict(inserted), rejected

    def _bisect(
        self,
        conn: psycopg.Connection[Any],
        kind: str,
        items: Sequence[Item],
        sent: dict[str, int],
        inserted: dict[str, int],
        rejected: list[tuple[int, str]],
    ) -> None:
        try:
            with conn.transaction():
                counts = ingest.write_batch(conn, {kind: [r for _, r in items]}, safe=True)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(items) == 1:
                rejected.append((items[0][0], self._why(kind, items[0][0], exc)))
                return
        else:
            sent[kind] += counts.sent.get(kind, 0)
            inserted[kind] += counts.inserted.get(kind, 0)
            return
        middle = len(items) // 2
        self._bisect(conn, kind, items[:middle], sent, inserted, rejected)
        self._bisect(conn, kind, items[middle:], sent, inserted, rejected)

    def _why(self, kind: str, row_id: int, exc: BaseException) -> str:
        """The quarantine message of a row the database refused: the full local check's
        finding when it has one (clearer), else the database's message."""
        payload = next((r[4] for r in self._batch if r[0] == row_id), None)
        decoder = DECODERS.get(kind)
        if decoder is not None and payload is not None:
            try:
                decoder(payload)
            except MalformedRecord as problem:
                return f"malformed {kind} record: {problem}"
        return f"rejected by the database: {_message(exc)}"

    def _refresh(self) -> int:
        if not self.refresh_rollups or self._conn is None:
            return 0
        try:
            with self._conn.transaction():
                row = self._conn.execute("SELECT flux.refresh_rollups()").fetchone()
            return int(row[0]) if row and row[0] is not None else 0
        except psycopg.Error as exc:
            # The dirty spans stay recorded: the next batch or `flux db refresh` redoes them.
            self._failed(f"rollup refresh failed: {_message(exc)}")
            self.close()
            return 0


def _decode(rows: Sequence[RawRow]) -> tuple[dict[str, list[Item]], list[tuple[int, str]]]:
    """Split rows into staged rows per kind, each with its outbox id, and problems."""
    by_kind: dict[str, list[Item]] = defaultdict(list)
    readings: dict[str, list[tuple[int, str, str, Any]]] = defaultdict(list)
    bad: list[tuple[int, str]] = []
    for row_id, kind, site_id, device, payload in rows:
        decoder = DECODERS.get(kind)
        if decoder is None:
            bad.append((row_id, f"unknown record kind {kind!r}"))
            continue
        if type(site_id) is not str or not site_id or type(device) is not str:
            bad.append((row_id, f"site {site_id!r} / device {device!r} must be text"))
            continue
        if kind in READING_KINDS:
            readings[kind].append((row_id, site_id, device, payload))
            continue
        try:
            values = decoder(payload)
        except MalformedRecord as exc:
            bad.append((row_id, f"malformed {kind} record: {exc}"))
            continue
        by_kind[kind].append((row_id, (site_id, device, values)))
    for kind, items in readings.items():
        lines = reading_lines([p for _, _, _, p in items])
        if lines is not None:
            by_kind[kind].extend(
                (row_id, (site, device, line))
                for (row_id, site, device, _), line in zip(items, lines, strict=True)
            )
            continue
        for row_id, site, device, payload in items:  # something is off: one by one
            try:
                by_kind[kind].append((row_id, (site, device, reading_line(kind, payload))))
            except MalformedRecord as exc:
                bad.append((row_id, f"malformed {kind} record: {exc}"))
    return {k: v for k, v in by_kind.items() if v}, bad


def _message(exc: BaseException) -> str:
    if isinstance(exc, TelemetryError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
