"""Bringing the 5 m, 30 m and 1 h rollups up to date, on either flavour, and retention.

Three sources are rolled up: battery readings, meter readings and frequency response's
one-second records (``flux.frequency_records``, 0010), each into ``flux.<source>_5m``,
``_30m`` and ``_1h``.

Plain PostgreSQL: statement triggers record the span of every insert in
``flux.rollup_dirty`` and ``flux.refresh_rollups()`` recomputes those device-hours in one
pass (0002, 0004). A range to rebuild is marked dirty for every device first.

TimescaleDB: ``refresh_continuous_aggregate`` per aggregate and range, 5 m before the
30 m and 1 h aggregates built on it. It commits as it goes, so it runs outside any
transaction (an autocommit connection), and only the aggregates' owner may run it: an
agent's role cannot, and its uploads are rolled up by `flux db refresh --every` (run by
deploy/flux-rollups.service as the owner) and the refresh policies, from the
invalidations TimescaleDB records (the 5 m rollups show the newest minutes in real time
meanwhile). Ranges are widened to whole UTC hours, so every bucket
touched is recomputed whole.

Retention (``flux.settings``, `flux db policy`) deletes raw readings older than the
setting, only once the rollups cover them, and never the rollups.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import psycopg
from psycopg import errors

from reconciler.telemetry.errors import TelemetryError

Source = Literal["bess", "meter", "frequency"]
SOURCES: Final[tuple[Source, ...]] = ("bess", "meter", "frequency")
#: Each source's raw table (in schema flux).
RAW_TABLES: Final[dict[Source, str]] = {
    "bess": "bess_readings",
    "meter": "meter_readings",
    "frequency": "frequency_records",
}
#: The kind (flux.devices) of each source's devices: a frequency record is the battery's.
DEVICE_KINDS: Final[dict[Source, str]] = {"bess": "bess", "meter": "meter", "frequency": "bess"}
WIDTHS: Final = ("5m", "30m", "1h")
HOUR: Final = timedelta(hours=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# A policy refresh of the same aggregate running at that moment: wait and try again.
_BUSY: Final = (
    errors.LockNotAvailable,
    errors.DeadlockDetected,
    errors.SerializationFailure,
    errors.ObjectInUse,
)
# A policy's refresh of the whole history can take a while: up to about 45 s of waiting.
_ATTEMPTS: Final = 10
RETENTION: Final = "retention"


@dataclass(frozen=True)
class Span:
    """A time range of one source's readings, [lo, hi), in whole UTC hours."""

    source: Source
    lo: datetime
    hi: datetime

    @property
    def hours(self) -> int:
        return int((self.hi - self.lo) / HOUR)


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def span_of(source: Source, first: datetime, last: datetime) -> Span:
    """The whole hours holding every instant from ``first`` to ``last`` (inclusive)."""
    return Span(source, floor_hour(first), floor_hour(last) + HOUR)


def span_of_us(source: Source, first_us: int, last_us: int) -> Span:
    """:func:`span_of` for microseconds since 1970."""
    return span_of(
        source, _EPOCH + timedelta(microseconds=first_us), _EPOCH + timedelta(microseconds=last_us)
    )


def merge_us(
    into: dict[Source, tuple[int, int]], more: Mapping[Source, tuple[int, int]]
) -> dict[Source, tuple[int, int]]:
    """Per source, the smallest range (microseconds) covering both."""
    for source, (lo, hi) in more.items():
        old = into.get(source)
        into[source] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
    return into


@dataclass(frozen=True)
class Refreshed:
    """What one refresh step did: a rollup (TimescaleDB: an aggregate such as
    ``flux.bess_5m``; PostgreSQL: a source's three rollups) over [lo, hi) (None: no bound),
    and ``hours`` recomputed (device-hours on PostgreSQL, hours of the window on
    TimescaleDB; None when the window is unbounded)."""

    name: str
    lo: datetime | None
    hi: datetime | None
    hours: int | None

    def describe(self) -> str:
        lo = self.lo.isoformat() if self.lo else "the start"
        hi = self.hi.isoformat() if self.hi else "now"
        hours = "" if self.hours is None else f" ({self.hours} hour(s))"
        return f"{self.name}: {lo} .. {hi}{hours}"


def flavour_of(conn: psycopg.Connection[Any]) -> str:
    """'timescale' or 'postgres', as recorded by the migrations."""
    row = conn.execute(
        "SELECT flavour FROM flux.schema_migrations ORDER BY version LIMIT 1"
    ).fetchone()
    return "timescale" if row and row[0] == "timescale" else "postgres"


def owns_rollups(conn: psycopg.Connection[Any]) -> bool:
    """Whether the connected role may refresh TimescaleDB's aggregates (their owner's
    rights; a superuser has them)."""
    row = conn.execute(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
        " WHERE oid = 'flux.bess_5m'::regclass"
    ).fetchone()
    return bool(row and row[0])


def _call_refresh(
    conn: psycopg.Connection[Any], name: str, lo: datetime | None, hi: datetime | None, force: bool
) -> None:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            # One pass over the window: TimescaleDB's default of 10 buckets a transaction
            # (50 minutes of 5 m buckets) made a backlog of months take minutes.
            conn.execute(
                "CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz,"
                " %s::timestamptz, force => %s, options => '{\"buckets_per_batch\": 0}')",
                (name, lo, hi, force),
            )
            return
        except _BUSY:
            if attempt == _ATTEMPTS:
                raise
            time.sleep(min(0.25 * 2**attempt, 8.0))


def refresh_timescale(
    conn: psycopg.Connection[Any], spans: Iterable[Span] | None, *, force: bool = False
) -> list[Refreshed]:
    """Refresh every aggregate over ``spans`` (None: over all time, the invalidated parts
    only), 5 m first. ``force`` recomputes the range even where nothing was invalidated
    (a rebuild). ``conn`` must be in autocommit mode."""
    if not conn.autocommit:
        raise TelemetryError("refresh_continuous_aggregate needs an autocommit connection")
    windows: list[tuple[Source, datetime | None, datetime | None]]
    if spans is None:
        windows = [(s, None, None) for s in SOURCES]
    else:
        windows = [(s.source, s.lo, s.hi) for s in spans]
    done: list[Refreshed] = []
    for width in WIDTHS:
        for source, lo, hi in windows:
            name = f"flux.{source}_{width}"
            _call_refresh(conn, name, lo, hi, force)
            hours = int((hi - lo) / HOUR) if lo is not None and hi is not None else None
            done.append(Refreshed(name, lo, hi, hours))
    return done


_PENDING_TIMESCALE: Final = """
    WITH h AS (
        SELECT id, split_part(table_name, '_', 1) AS source, table_name
        FROM _timescaledb_catalog.hypertable
        WHERE schema_name = 'flux'
          AND table_name IN ('bess_readings', 'meter_readings', 'frequency_records')
    )
    SELECT h.source,
           -- Clamped to 1970..2200: an unbounded invalidation (a TRUNCATE) is +-infinity.
           -- (CASE, not greatest/least: those would turn the outer join's NULL into a bound.)
           _timescaledb_functions.to_timestamp(min(
               CASE WHEN l.lowest_modified_value < 0 THEN 0 ELSE l.lowest_modified_value END)),
           _timescaledb_functions.to_timestamp(max(
               CASE WHEN l.greatest_modified_value > 7258118400000000 THEN 7258118400000000
                    ELSE l.greatest_modified_value END)),
           (SELECT _timescaledb_functions.to_timestamp(greatest(t.watermark, 0))
            FROM _timescaledb_catalog.continuous_aggs_invalidation_threshold t
            WHERE t.hypertable_id = h.id)
    FROM h LEFT JOIN _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l
        ON l.hypertable_id = h.id
    GROUP BY h.id, h.source
    ORDER BY h.source
"""


def pending_timescale(conn: psycopg.Connection[Any]) -> list[Span] | None:
    """The ranges of raw readings the aggregates do not cover yet, per source: the
    invalidations TimescaleDB recorded, and the readings after its threshold (never
    materialised). Read from TimescaleDB's catalog; None if its layout is not the one
    known here (the refresh itself does not depend on this)."""
    try:
        rows = conn.execute(_PENDING_TIMESCALE).fetchall()
        spans: list[Span] = []
        for source, lo, hi, threshold in rows:
            # The readings in those ranges (an invalidation can be far wider than the rows
            # it was recorded for, e.g. all time after a schema change).
            found: list[tuple[datetime, datetime]] = []
            table = f"flux.{RAW_TABLES[source]}"
            if lo is not None:
                row = conn.execute(
                    f"SELECT min(time), max(time) FROM {table} WHERE time >= %s AND time <= %s",
                    (lo, hi),
                ).fetchone()
                if row and row[0] is not None:
                    found.append((row[0], row[1]))
            row = conn.execute(
                f"SELECT min(time), max(time) FROM {table} WHERE time >= %s",
                (threshold or _EPOCH,),
            ).fetchone()
            if row and row[0] is not None:
                found.append((row[0], row[1]))
            if found:
                first = min(f[0] for f in found)
                last = max(f[1] for f in found)
                spans.append(span_of(source, first, last))
        return spans
    except psycopg.Error:
        return None


def refresh_postgres(
    conn: psycopg.Connection[Any], spans: Iterable[Span] | None = None
) -> tuple[list[Refreshed], int]:
    """Run ``flux.refresh_rollups()`` after marking ``spans`` dirty for every device of
    their source (a rebuild of that range): the ranges it recomputed per source, and the
    device-hours. The caller commits."""
    for span in spans or ():
        conn.execute(
            "INSERT INTO flux.rollup_dirty (source, site_id, device, lo, hi)"
            " SELECT %s, site_id, device, %s, %s - interval '1 microsecond'"
            " FROM flux.devices WHERE kind = %s",
            (span.source, span.lo, span.hi, DEVICE_KINDS[span.source]),
        )
    pending = conn.execute(
        "SELECT source, min(lo), max(hi) FROM flux.rollup_dirty GROUP BY source ORDER BY source"
    ).fetchall()
    row = conn.execute("SELECT flux.refresh_rollups()").fetchone()
    hours = int(str(row[0])) if row and row[0] is not None else 0
    done = [
        Refreshed(f"flux.{source}_5m/30m/1h", floor_hour(lo), floor_hour(hi) + HOUR, None)
        for source, lo, hi in pending
    ]
    return done, hours


# ------------------------------------------------------------------------- retention

_DURATION: Final = re.compile(r"^\s*(\d+)\s*(d|w|m|y)\s*$")
_UNIT: Final = {"d": "days", "w": "weeks", "m": "months", "y": "years"}
MIN_RETENTION_DAYS: Final = 7


def parse_retention(text: str) -> str | None:
    """A retention such as ``2y``, ``18m``, ``90d`` or ``off`` as a PostgreSQL interval
    (None for off). Raises ValueError with what to write instead."""
    if text.strip().lower() in ("off", "none", "never"):
        return None
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 2y, 18m, 12w or 90d (or off)")
    count, unit = int(match[1]), match[2]
    days = count * {"d": 1, "w": 7, "m": 30, "y": 365}[unit]
    if days < MIN_RETENTION_DAYS:
        raise ValueError(f"{text!r}: keep at least {MIN_RETENTION_DAYS} days of raw readings")
    return f"{count} {_UNIT[unit]}"


def retention(conn: psycopg.Connection[Any]) -> str | None:
    """The retention setting (a PostgreSQL interval), or None: keep every reading."""
    row = conn.execute("SELECT value FROM flux.settings WHERE name = %s", (RETENTION,)).fetchone()
    return str(row[0]) if row else None


def set_retention(conn: psycopg.Connection[Any], interval: str | None) -> None:
    if interval is None:
        conn.execute("DELETE FROM flux.settings WHERE name = %s", (RETENTION,))
        return
    conn.execute(
        "INSERT INTO flux.settings (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (RETENTION, interval),
    )


@dataclass(frozen=True)
class Pruned:
    """Raw readings removed by retention: before ``cutoff``, ``chunks`` (TimescaleDB) or
    ``rows`` (PostgreSQL)."""

    cutoff: datetime
    chunks: int = 0
    rows: int = 0


def apply_retention(conn: psycopg.Connection[Any], flavour: str) -> Pruned | None:
    """Delete raw readings older than the retention setting, after bringing the rollups
    up to date up to that point; the rollups keep every bucket. None when retention is
    off. ``conn`` must be in autocommit mode."""
    interval = retention(conn)
    if interval is None:
        return None
    row = conn.execute(
        "SELECT date_trunc('hour', now() - %s::interval, 'UTC')", (interval,)
    ).fetchone()
    assert row is not None
    cutoff: datetime = row[0]
    if flavour == "timescale":
        # Every bucket before the cutoff materialised, then the chunks dropped without
        # recording invalidations: a refresh over that range would otherwise empty it.
        for width in WIDTHS:
            for source in SOURCES:
                _call_refresh(conn, f"flux.{source}_{width}", None, cutoff, False)
        chunks = 0
        with conn.transaction():
            conn.execute("SET LOCAL timescaledb.skip_cagg_invalidation = on")
            for source in SOURCES:
                dropped = conn.execute(
                    "SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::timestamptz)",
                    (f"flux.{RAW_TABLES[source]}", cutoff),
                ).fetchone()
                chunks += int(dropped[0]) if dropped else 0
        return Pruned(cutoff, chunks=chunks)
    rows = 0
    with conn.transaction():
        conn.execute("SELECT flux.refresh_rollups()")
        for source in SOURCES:
            cur = conn.execute(
                f"DELETE FROM flux.{RAW_TABLES[source]} WHERE time < %s",
                (cutoff,),
            )
            rows += max(cur.rowcount, 0)
    return Pruned(cutoff, rows=rows)
