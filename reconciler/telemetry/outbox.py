"""The durable local outbox: every record goes here first (SQLite, one file per agent).

Rows leave it only when the database has confirmed them (see uploader.py) or, if they
cannot be parsed, into the ``quarantine`` table with the error. Nothing is ever dropped.
With no database configured (the embedded default) the outbox simply keeps everything.

Durability: WAL journal with ``synchronous=FULL``. WAL alone makes each commit atomic and
survives kill -9 (the OS still holds the written pages); FULL also fsyncs the WAL on every
commit so a power cut cannot lose a committed reading. NORMAL would be cheaper but may
roll back the last commits after a power loss; at one record per device per minute the
fsync cost is negligible, and bulk writers use ``add_*_many`` (one commit per batch).

Thread use: every thread gets its own SQLite connection (the agent loop writes while the
uploader reads in a worker thread); WAL lets them run concurrently.

Pending rows are counted once, when the outbox is opened, and then kept by this object
(added on insert, taken off by the rows a delete actually removed, under a lock: the loop
adds while the uploader's threads delete). So :meth:`Outbox.pending` costs the same at a
million rows as at none, where ``count(*)`` scans the table (about 0.1 s at a million).
The count is exact while this object is the outbox's only writer, which the agent's
battery lock and state folder ensure; another process writing the same file (e.g. `flux
db upload --outbox` on a live agent's file) is not seen until :meth:`Outbox.recount`.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from reconciler.control.types import BatteryReading, Decision, FrequencyRecord, MeterReading
from reconciler.telemetry import records
from reconciler.telemetry.errors import TelemetryError
from reconciler.telemetry.records import Kind, MalformedRecord

DEFAULT_MAX_ROWS = 1_000_000
"""Pending rows beyond which the outbox reports a backlog condition (about 11 days of one
battery and three meters at one record a minute)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    site_id  TEXT NOT NULL,
    device   TEXT NOT NULL DEFAULT '',
    payload  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id       INTEGER NOT NULL,
    kind            TEXT,
    site_id         TEXT,
    device          TEXT,
    payload         BLOB,
    error           TEXT NOT NULL,
    quarantined_at  TEXT NOT NULL
);
"""

RawRow = tuple[int, str, str, str, Any]
"""(id, kind, site_id, device, payload) as stored."""

# A reading whose payload is a bracketed list of plain JSON numbers and nulls (what the
# encoders write: no spaces, strings, NaN or Infinity), from a site and device free of
# COPY's special characters, takes the fast path: its values are checked by the database
# (a bad one fails the COPY and the uploader splits the batch to find it). Anything else
# is checked fully in Python (uploader.py) and quarantined with the reason if it fails.
_NUMBERS_LIST: Final = re.compile(r"\[[-+0-9.eE,nul]*\]").fullmatch
_COPY_SPECIAL: Final = re.compile(r"[\t\n\r\\]").search


@dataclass(frozen=True)
class DeviceRows:
    """Well-framed readings of one kind from one site and device: (id, payload) in id
    order."""

    site_id: str
    device: str
    rows: list[tuple[int, str]]


@dataclass(frozen=True)
class OutboxBatch:
    """Rows ``after_id < id <= last_id``: well-framed readings per kind and device, every
    other row as stored, and the (kind, site, device) of the readings."""

    last_id: int | None
    readings: dict[str, list[DeviceRows]]
    others: list[RawRow]
    keys: set[tuple[str, str, str]]


@dataclass(frozen=True)
class OutboxRecord:
    """One pending record, decoded for display."""

    id: int
    kind: str
    site_id: str
    device: str
    at: datetime
    values: dict[str, Any]


@dataclass(frozen=True)
class QuarantinedRow:
    id: int
    outbox_id: int
    kind: str | None
    site_id: str | None
    device: str | None
    payload: Any
    error: str
    quarantined_at: str


@dataclass(frozen=True)
class OutboxCondition:
    """The backlog condition the agent loop reports (e.g. as a status condition)."""

    pending: int
    max_rows: int
    quarantined: int

    @property
    def over_limit(self) -> bool:
        return self.pending > self.max_rows

    @property
    def message(self) -> str:
        parts = [f"{self.pending} records waiting to upload"]
        if self.over_limit:
            parts.append(f"more than the configured {self.max_rows}: the database is behind")
        if self.quarantined:
            parts.append(f"{self.quarantined} malformed records quarantined")
        return "; ".join(parts)


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    result: dict[str, int] = {kind: 0 for kind in records.KINDS}
    for kind, n in conn.execute("SELECT kind, count(*) FROM outbox GROUP BY kind"):
        result[str(kind)] = int(n)
    result["pending"] = sum(result.values())
    (quarantined,) = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    result["quarantined"] = int(quarantined)
    return result


def read_counts(path: Path, busy_timeout_s: float = 30.0) -> dict[str, int]:
    """:meth:`Outbox.counts` of the outbox file at ``path``, opened read-only: an
    :class:`Outbox` creates its tables in whatever file it is given, and a command that
    only looks (`flux db status --outbox`) must not turn a wrong file into an outbox.
    Raises :class:`TelemetryError` when ``path`` is not an outbox."""
    advice = "give the agent's outbox file (e.g. /var/lib/flux/outbox.sqlite)"
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s
        )
    except sqlite3.Error as exc:
        raise TelemetryError(f"cannot open the outbox {path} ({exc}); {advice}") from None
    try:
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        if not {"outbox", "quarantine"} <= tables:
            raise TelemetryError(f"{path} is not a flux outbox (it has no outbox table); {advice}")
        return _counts(conn)
    except sqlite3.DatabaseError as exc:  # "file is not a database", among others
        raise TelemetryError(f"{path} is not a flux outbox ({exc}); {advice}") from None
    finally:
        conn.close()


class Outbox:
    """A SQLite outbox at ``path``. Safe to use from several threads and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        busy_timeout_s: float = 30.0,
    ) -> None:
        """``busy_timeout_s``: how long a statement waits for another connection's lock
        before it fails with ``sqlite3.OperationalError`` (database is locked)."""
        self.path = Path(path)
        self.max_rows = max_rows
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        conn.executescript(_SCHEMA)
        self._pending = 0
        self.recount()

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self.busy_timeout_s,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ adding

    def _counted(self, change: int) -> None:
        """Apply a committed change to the pending count. Not clamped: another thread may
        upload and delete a row between its insert's commit and this call, and the sum
        must still come out exact."""
        with self._count_lock:
            self._pending += change

    def _add(self, kind: Kind, site_id: str, device: str, payload: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO outbox (kind, site_id, device, payload) VALUES (?, ?, ?, ?)",
                (kind, site_id, device, payload),
            )
        self._counted(1)

    def _add_many(self, rows: Iterable[tuple[Kind, str, str, str]]) -> int:
        with self._write() as conn:
            cur = conn.executemany(
                "INSERT INTO outbox (kind, site_id, device, payload) VALUES (?, ?, ?, ?)", rows
            )
            added = cur.rowcount
        self._counted(added)
        return added

    def add_bess(
        self,
        site_id: str,
        device: str,
        reading: BatteryReading,
        *,
        actual_power_kw: float | None = None,
    ) -> None:
        """A battery reading; ``actual_power_kw`` (+ discharge) when a meter measures it."""
        self._add("bess", site_id, device, records.encode_bess(reading, actual_power_kw))

    def add_meter(self, site_id: str, device: str, reading: MeterReading) -> None:
        self._add("meter", site_id, device, records.encode_meter(reading))

    def add_bess_many(self, site_id: str, device: str, readings: Iterable[BatteryReading]) -> int:
        return self._add_many(("bess", site_id, device, records.encode_bess(r)) for r in readings)

    def add_meter_many(self, site_id: str, device: str, readings: Iterable[MeterReading]) -> int:
        return self._add_many(("meter", site_id, device, records.encode_meter(r)) for r in readings)

    def add_frequency_many(
        self, site_id: str, device: str, seconds: Iterable[FrequencyRecord]
    ) -> int:
        """Frequency response's records (one a second while the mode is active) of the
        battery ``device``, in one commit: the loop hands them over once per tick, so the
        fast path never waits for an fsync."""
        return self._add_many(
            ("frequency", site_id, device, records.encode_frequency(r)) for r in seconds
        )

    def add_decision(self, site_id: str, revision_sha: str | None, decision: Decision) -> None:
        """One tick's decision and the revision (commit sha) that produced it."""
        self._add("decision", site_id, "", records.encode_decision(revision_sha, decision))

    def add_status(self, site_id: str, at: datetime, conditions: Mapping[str, Any]) -> None:
        """An agent heartbeat: its status conditions, JSON-serialisable."""
        self._add("status", site_id, "", records.encode_status(at, conditions))

    def add_market(
        self,
        site_id: str,
        *,
        type: str,
        period_start: datetime,
        settlement_date: date,
        settlement_period: int,
        value: float,
        source: str,
        fetched_at: datetime,
    ) -> None:
        """A market value (e.g. type ``imbalance_price`` in p/kWh, ``niv`` in MWh) of one
        settlement period starting at ``period_start``, as fetched from ``source``."""
        self._add(
            "market",
            site_id,
            "",
            records.encode_market(
                at=period_start,
                type=type,
                settlement_date=settlement_date,
                settlement_period=settlement_period,
                value=value,
                source=source,
                fetched_at=fetched_at,
            ),
        )

    def add_revision(
        self,
        site_id: str,
        sha: str,
        at: datetime,
        *,
        state: str,
        conditions: Mapping[str, Any] | None = None,
        errors: Sequence[str] = (),
        message: str = "",
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        """A config revision's state at ``at`` (e.g. staged, applied, quarantined), with
        its conditions and validation errors; ``identity`` (the site's name, timezone and
        devices with their roles) when the revision takes control."""
        self._add(
            "revision",
            site_id,
            "",
            records.encode_revision(
                at=at,
                sha=sha,
                state=state,
                conditions=conditions or {},
                errors=errors,
                message=message,
                identity=identity,
            ),
        )

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        """Pending rows per kind, plus ``pending`` (all kinds) and ``quarantined``."""
        return _counts(self._conn())

    def pending(self) -> int:
        """Rows waiting to be uploaded (kept count: no table scan, see the module doc)."""
        with self._count_lock:
            return max(0, self._pending)

    def recount(self) -> int:
        """Count the pending rows in the table again (a scan: ~0.1 s at a million rows)
        and keep that count; for a file another process has written meanwhile."""
        with self._count_lock:
            (n,) = self._conn().execute("SELECT count(*) FROM outbox").fetchone()
            self._pending = int(n)
            return self._pending

    def quarantined_count(self) -> int:
        """Rows set aside as malformed (see :meth:`quarantine`)."""
        (n,) = self._conn().execute("SELECT count(*) FROM quarantine").fetchone()
        return int(n)

    def condition(self) -> OutboxCondition:
        return OutboxCondition(self.pending(), self.max_rows, self.quarantined_count())

    @property
    def over_limit(self) -> bool:
        """True while more than ``max_rows`` records wait: the loop raises a condition."""
        return self.pending() > self.max_rows

    def oldest_at(self) -> datetime | None:
        """The instant of the oldest pending record (the first by id: one index step, at
        any backlog), or None when nothing is pending or it cannot be decoded."""
        row = (
            self._conn().execute("SELECT kind, payload FROM outbox ORDER BY id LIMIT 1").fetchone()
        )
        if row is None:
            return None
        try:
            at = records.describe(str(row[0]), row[1]).get("at")
        except (MalformedRecord, KeyError):
            return None
        return at if isinstance(at, datetime) else None

    def latest(self, kind: str | None = None, *, limit: int = 20) -> list[OutboxRecord]:
        """The newest pending records (newest first), decoded; malformed ones are skipped
        here (the uploader quarantines them)."""
        conn = self._conn()
        if kind is None:
            rows = conn.execute(
                "SELECT id, kind, site_id, device, payload FROM outbox ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT id, kind, site_id, device, payload FROM outbox WHERE kind = ?"
                " ORDER BY id DESC LIMIT ?",
                (kind, limit),
            ).fetchall()
        out: list[OutboxRecord] = []
        for row_id, row_kind, site_id, device, payload in rows:
            try:
                values = records.describe(str(row_kind), payload)
            except (MalformedRecord, KeyError):
                continue
            at = values.pop("at")
            out.append(OutboxRecord(row_id, row_kind, site_id, device, at, values))
        return out

    def latest_per_device(self) -> list[OutboxRecord]:
        """The newest pending reading of every (site, device): the demo's live table."""
        rows = (
            self._conn()
            .execute(
                "SELECT max(id) FROM outbox WHERE kind IN ('bess', 'meter')"
                " GROUP BY site_id, device ORDER BY site_id, device"
            )
            .fetchall()
        )
        out: list[OutboxRecord] = []
        for (row_id,) in rows:
            row = (
                self._conn()
                .execute(
                    "SELECT id, kind, site_id, device, payload FROM outbox WHERE id = ?", (row_id,)
                )
                .fetchone()
            )
            if row is None:
                continue
            try:
                values = records.describe(str(row[1]), row[4])
            except MalformedRecord:
                continue
            at = values.pop("at")
            out.append(OutboxRecord(row[0], row[1], row[2], row[3], at, values))
        return out

    def quarantined(self) -> list[QuarantinedRow]:
        rows = self._conn().execute(
            "SELECT id, outbox_id, kind, site_id, device, payload, error, quarantined_at"
            " FROM quarantine ORDER BY id"
        )
        return [QuarantinedRow(*row) for row in rows]

    # ------------------------------------------------------------------ for the uploader

    def oldest(self, limit: int, *, after_id: int | None = None) -> list[RawRow]:
        """The ``limit`` oldest pending rows (after ``after_id``), as stored, oldest first."""
        cursor = self._conn().execute(
            "SELECT id, kind, site_id, device, payload FROM outbox WHERE id > ?"
            " ORDER BY id LIMIT ?",
            (after_id if after_id is not None else -1, limit),
        )
        return cursor.fetchall()

    def read_batch(self, limit: int, *, after_id: int | None = None) -> OutboxBatch:
        """The next ``limit`` rows after ``after_id`` for upload, readings sorted out.

        Read per (kind, site, device), in one read transaction: fewer Python objects per
        row than one wide query, and the checks on site and device run once per device."""
        conn = self._conn()
        start = after_id if after_id is not None else -1
        conn.execute("BEGIN")
        try:
            (last_id,) = conn.execute(
                "SELECT max(id) FROM (SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?)",
                (start, limit),
            ).fetchone()
            if last_id is None:
                return OutboxBatch(None, {}, [], set())
            bounds = (start, last_id)
            groups = conn.execute(
                "SELECT DISTINCT kind, site_id, device FROM outbox WHERE id > ? AND id <= ?",
                bounds,
            ).fetchall()
            readings: dict[str, list[DeviceRows]] = {}
            others: list[RawRow] = []
            keys: set[tuple[str, str, str]] = set()
            for kind, site_id, device in groups:
                where = "id > ? AND id <= ? AND kind IS ? AND site_id IS ? AND device IS ?"
                args = (*bounds, kind, site_id, device)
                plain = (
                    kind in records.READING_KINDS
                    and type(site_id) is str
                    and type(device) is str
                    and site_id != ""
                    and _COPY_SPECIAL(site_id + device) is None
                )
                if not plain:
                    others += conn.execute(
                        f"SELECT id, kind, site_id, device, payload FROM outbox WHERE {where}",
                        args,
                    ).fetchall()
                    continue
                rows = conn.execute(
                    f"SELECT id, payload FROM outbox WHERE {where} ORDER BY id", args
                ).fetchall()
                good = [r for r in rows if type(r[1]) is str and _NUMBERS_LIST(r[1])]
                if len(good) < len(rows):
                    others += [
                        (i, kind, site_id, device, p)
                        for i, p in rows
                        if not (type(p) is str and _NUMBERS_LIST(p))
                    ]
                if good:
                    readings.setdefault(kind, []).append(DeviceRows(site_id, device, good))
                    keys.add((kind, site_id, device))
            others.sort(key=lambda row: int(row[0]))
            return OutboxBatch(last_id, readings, others, keys)
        finally:
            conn.execute("COMMIT")

    def payload(self, row_id: int) -> tuple[str, Any] | None:
        """(kind, payload) of one pending row."""
        row = (
            self._conn()
            .execute("SELECT kind, payload FROM outbox WHERE id = ?", (row_id,))
            .fetchone()
        )
        return (str(row[0]), row[1]) if row else None

    def confirm(self, first_id: int, last_id: int) -> int:
        """Delete rows ``first_id..last_id``: the database has committed them.

        Ids only grow (AUTOINCREMENT), so rows added after the batch was read lie above
        ``last_id`` and are untouched.
        """
        with self._write() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (first_id, last_id))
            deleted = cur.rowcount
        self._counted(-deleted)
        return deleted

    def quarantine(self, problems: Sequence[tuple[int, str]]) -> int:
        """Move rows that cannot be uploaded to the quarantine table with their error."""
        if not problems:
            return 0
        now = datetime.now(UTC).isoformat()
        deleted = 0
        with self._write() as conn:
            for row_id, error in problems:
                conn.execute(
                    "INSERT INTO quarantine"
                    " (outbox_id, kind, site_id, device, payload, error, quarantined_at)"
                    " SELECT id, kind, site_id, device, payload, ?, ? FROM outbox WHERE id = ?",
                    (error, now, row_id),
                )
                deleted += conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
        self._counted(-deleted)
        return len(problems)
