"""A site's record over a period, read from its telemetry database as a reader can.

Per settlement period (UTC start), from the 30 minute rollups: the grid meter's mean power
and the import and export its counters measured, the solar meters' generation, the battery's mean
power (measured where recorded, else its target; + discharge) and SoE. From the raw
tables: the control decisions' winners and safe stops, the imbalance prices the agent
fetched (the latest fetch of each period), the missing minutes of each device and when
its rows reached the database (``received_at``, migration 0011). From the 30 minute
frequency response rollups: its seconds, how many were delivered within tolerance of the
contract's curve, and the energy.

A period without a grid meter or battery rollup row is missing (NaN), not zero: the
figures count it as a gap rather than as a quiet half hour. The periods are columns
(:class:`Periods`): a fleet-year is 17 million half hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from reconciler.backtest.prices import period_starts
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD
from reconciler.diff.tolerances import limit_tolerances
from reconciler.telemetry.database import connect
from reconciler.telemetry.gaps import Gap, find_gaps

if TYPE_CHECKING:
    import psycopg

#: A reading that reached the database more than this many minutes after its time is late.
LATE_MINUTES = 10


class ReportDataError(ValueError):
    """The database cannot give what a report needs; the message says what to do."""


#: The columns of :class:`Periods` from the 5 minute split, in this order (kW means over
#: the period, each >= 0; ``idle``: the grid had the battery been idle, grid + battery).
SPLIT_COLUMNS = ("import_kw", "export_kw", "discharge_kw", "charge_kw", "idle_import_kw",
                 "idle_export_kw")  # fmt: skip


@dataclass(frozen=True, eq=False)
class Periods:
    """The range's settlement periods as columns, one element a period in time order (the
    i-th starts ``start + i`` half hours, UTC), NaN where the database holds no row: kW
    means, the grid meter's counters' kWh in the period, the SoE (kWh) at its end.

    A year is 17,568 periods: arrays, not an object per half hour (a fleet reads a
    thousand site-years). ``split`` (n x 6, :data:`SPLIT_COLUMNS`) keeps a period's flows
    apart at 5 minute resolution, so a half hour that both imports and exports shows
    both, not their net; NaN rows: no 5 minute bucket held both a grid and battery row.
    """

    start: datetime
    grid_kw: NDArray[np.float64]
    grid_import_kwh: NDArray[np.float64]
    grid_export_kwh: NDArray[np.float64]
    solar_kw: NDArray[np.float64]
    battery_kw: NDArray[np.float64]
    soe_kwh: NDArray[np.float64]
    split: NDArray[np.float64]
    #: The imbalance price of each period (p/kWh; NaN: none recorded).
    price: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.grid_kw)

    def at(self, i: int) -> datetime:
        """The UTC start of period ``i``."""
        return self.start + i * PERIOD


@dataclass(frozen=True)
class FrequencyBucket:
    """Frequency response in one half hour (UTC start) of the battery's records: seconds
    the mode was active, with a response due (a fresh frequency), delivered within
    tolerance, cut by the envelope; the mean |delivered - expected| over the due seconds
    (kW, None: none due); the energy expected and delivered (kWh, + discharge, net)."""

    start: datetime
    seconds: int
    seconds_due: int
    seconds_within: int
    seconds_cut: int
    abs_error_avg_kw: float | None
    expected_kwh: float
    delivered_kwh: float


@dataclass(frozen=True)
class Arrivals:
    """When one device's rows in the range reached the database: how many rows, how many
    more than :data:`LATE_MINUTES` after their time, the worst delay (s; None: no row with
    a known arrival) and the rows stored before arrivals were recorded (unknown)."""

    rows: int
    late_rows: int
    worst_delay_s: float | None
    unknown_rows: int


@dataclass(frozen=True)
class Record:
    """What the database holds of one site over [start, end)."""

    site_id: str
    start: datetime
    end: datetime
    periods: Periods
    #: Whether the database holds imbalance prices in the range.
    prices_recorded: bool
    price_sources: tuple[str, ...]
    decisions_by_winner: dict[str, int]
    safe_stops_by_reason: dict[str, int]
    gaps: tuple[Gap, ...]
    devices: tuple[str, ...]
    soe_start_kwh: float | None
    readings_over_import: int
    readings_over_export: int
    readings_soe_outside: int
    frequency: tuple[FrequencyBucket, ...] = ()
    #: Per device; None when the database predates ``received_at`` (migration 0011).
    arrivals: dict[str, Arrivals] | None = None


# Rows come back keyed by their period's index in the range (a whole number on a period
# boundary; float8 arithmetic on whole seconds is exact): numbers load faster than
# instants, and index arrays (date_part: float8, cheaper than extract's numeric).


def _index(col: str) -> str:
    return f"(date_part('epoch', {col}) - %(e)s) / 1800"


_METER_30M = f"""
SELECT {_index("bucket")}, power_avg_kw, energy_import_kwh, energy_export_kwh
FROM flux.meter_30m
WHERE site_id = %(s)s AND device = %(d)s AND bucket >= %(a)s AND bucket < %(b)s
"""

_BESS_30M = f"""
SELECT {_index("bucket")},
       CASE WHEN actual_samples > 0 THEN actual_power_avg_kw ELSE target_power_avg_kw END,
       soe_avg_kwh
FROM flux.bess_30m
WHERE site_id = %(s)s AND device = %(d)s AND bucket >= %(a)s AND bucket < %(b)s
"""

# The SoE at a period's end: the last reading in it (the rollups keep only means).
_SOE_END = f"""
SELECT {_index("date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00')")},
       (array_agg(soe_kwh ORDER BY time DESC))[1]
FROM flux.bess_readings
WHERE site_id = %(s)s AND device = %(d)s AND time >= %(a)s AND time < %(b)s
GROUP BY date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00')
"""

_MARKET = f"""
SELECT DISTINCT ON (time) {_index("time")}, value, source
FROM flux.market_data
WHERE site_id = %(s)s AND type = 'imbalance_price' AND time >= %(a)s AND time < %(b)s
ORDER BY time, fetched_at DESC
"""

_DECISIONS = """
SELECT safe_stop, CASE WHEN safe_stop THEN reason ELSE coalesce(winner, 'idle') END, count(*)
FROM flux.control_decisions WHERE site_id = %s AND time >= %s AND time < %s
GROUP BY 1, 2
"""

# The split, per period from its 5 minute buckets holding both a grid and a battery row.
# Run with nested loops off: with the rollups' statistics not gathered yet (just
# uploaded) the join is planned as a nested loop and took 7 s over a month (a hash join:
# 0.01 s; 0.2 s over a year). sum / count(*), not avg: the same float8 sum in the same
# order, divided by the same count (so the same digits), without avg's running sum of
# squares (a third of the query's time).
_SPLIT = f"""
WITH g AS (
    SELECT bucket, power_avg_kw AS g FROM flux.meter_5m
    WHERE site_id = %(s)s AND device = %(grid)s AND bucket >= %(a)s AND bucket < %(b)s
      AND power_avg_kw IS NOT NULL
), b AS (
    SELECT bucket,
           CASE WHEN actual_samples > 0 THEN actual_power_avg_kw ELSE target_power_avg_kw END
               AS b
    FROM flux.bess_5m
    WHERE site_id = %(s)s AND device = %(bess)s AND bucket >= %(a)s AND bucket < %(b)s
)
SELECT {_index("date_bin('30 minutes', bucket, timestamptz '2000-01-01 00:00+00')")},
       sum(greatest(g, 0)) / count(*), sum(greatest(-g, 0)) / count(*),
       sum(greatest(b, 0)) / count(*), sum(greatest(-b, 0)) / count(*),
       sum(greatest(g + b, 0)) / count(*), sum(greatest(-g - b, 0)) / count(*)
FROM g JOIN b USING (bucket) WHERE b IS NOT NULL
GROUP BY date_bin('30 minutes', bucket, timestamptz '2000-01-01 00:00+00')
"""

# A report reads a few large ranges: JIT compiling them costs more than it saves (0.6 s
# of a 1 s query over a year), and the year's 5 minute join fits in memory. Instants come
# back in UTC, and the large results in binary, fetched at once (3 times faster to load
# than text rows one by one).
_SESSION = ("SET jit = off", "SET work_mem = '64MB'", "SET TimeZone = 'UTC'")

_SOE_START = """
SELECT soe_kwh FROM flux.bess_readings
WHERE site_id = %s AND device = %s AND time >= %s AND time < %s ORDER BY time LIMIT 1
"""

# Readings past a limit, each standing for one record interval.
_OVER = """
SELECT count(*) FILTER (WHERE power_kw > %(imp)s), count(*) FILTER (WHERE power_kw < -%(exp)s)
FROM flux.meter_readings
WHERE site_id = %(s)s AND device = %(d)s AND time >= %(a)s AND time < %(b)s
"""

_SOE_OUTSIDE = """
SELECT count(*) FROM flux.bess_readings
WHERE site_id = %(s)s AND device = %(d)s AND time >= %(a)s AND time < %(b)s
  AND (soe_kwh < %(lo)s OR soe_kwh > %(hi)s)
"""

_FREQUENCY_30M = """
SELECT bucket, samples, due_samples, within_samples, cut_samples, abs_error_avg_kw,
       expected_kwh, delivered_kwh
FROM flux.frequency_30m WHERE site_id = %s AND device = %s AND bucket >= %s AND bucket < %s
ORDER BY bucket
"""

# When rows arrived: received_at is the uploading transaction's time (0011_received_at).
_ARRIVALS = """
SELECT device, count(*), count(*) FILTER (WHERE received_at > time + %(late)s),
       extract(epoch FROM max(received_at - time)), count(*) FILTER (WHERE received_at IS NULL)
FROM {table} WHERE site_id = %(s)s AND time >= %(a)s AND time < %(b)s GROUP BY device
"""

_KNOWN = """
SELECT (SELECT count(*) FROM flux.sites WHERE site_id = %(s)s)
     + (SELECT count(*) FROM flux.devices WHERE site_id = %(s)s)
"""

_DEVICES = "SELECT device FROM flux.devices WHERE site_id = %s ORDER BY device"


def _utc(at: Any) -> datetime:
    assert isinstance(at, datetime)
    return at.astimezone(UTC)


def _f(value: Any) -> float:
    return float(value)


def _n(value: Any) -> int:
    return int(value)


@contextmanager
def _connection(
    url: str, shared: psycopg.Connection[Any] | None
) -> Iterator[psycopg.Connection[Any]]:
    if shared is None:
        with connect(url) as conn:
            yield conn
        return
    try:
        yield shared
    finally:
        # A reader writes nothing: end the site's transaction (aborted or not), keep the
        # connection for the next site.
        shared.rollback()


def read_record(
    url: str,
    site: Site,
    start: datetime,
    end: datetime,
    db_site: str,
    conn: psycopg.Connection[Any] | None = None,
) -> Record:
    """The record of ``db_site`` over [start, end) (aware, on period boundaries), its
    devices named as ``site``'s file names them. Raises :class:`ReportDataError` for an
    unknown site or a database without the flux schema, and
    :class:`~reconciler.telemetry.errors.DatabaseUnreachable` when it cannot connect.

    ``conn``: an open connection to ``url`` to read with (a fleet's worker keeps one for
    all its sites: a new backend's first queries cost the server about 0.03 s more than
    a warm one's, a tenth of a site-year's reading)."""
    import psycopg

    start, end = start.astimezone(UTC), end.astimezone(UTC)
    n = len(period_starts(start, end))
    grid = site.grid_meter_name
    battery = site.devices.battery.name
    solar_meters = [n for n, m in site.devices.meters.items() if m.role == "solar"]
    with _connection(url, conn) as conn:
        for setting in _SESSION:
            conn.execute(setting)
        try:
            known = conn.execute(_KNOWN, {"s": db_site}).fetchone()
        except psycopg.errors.UndefinedTable:
            raise ReportDataError(
                "the database has no flux schema; give the telemetry database "
                "(`flux db migrate` creates it)"
            ) from None
        if known is None or _n(known[0]) == 0:
            raise ReportDataError(
                f"the database knows no site {db_site!r}; check the site id "
                "(--db-site) or the database URL"
            )

        def rows(query: str, params: Any) -> list[tuple[Any, ...]]:
            return conn.execute(query, params, binary=True).fetchall()

        span = {"s": db_site, "a": start, "b": end, "e": start.timestamp()}

        def columns(query: str, params: dict[str, Any], width: int) -> NDArray[np.float64]:
            """A query's rows (period index, values...) as an n x width array, NaN where no
            row (nor a NULL value) fell in a period."""
            out = np.full((n, width), np.nan)
            got = rows(query, params)
            if got:
                # None loads as NaN in a float array.
                table = np.array(got, dtype=np.float64)
                at = _on_periods(table[:, 0], n)
                out[table[at, 0].astype(np.int64)] = table[at, 1:]
            return out

        grid_cols = columns(_METER_30M, {**span, "d": grid}, 3)
        solar = np.zeros(n)
        for name in solar_meters:
            kw = columns(_METER_30M, {**span, "d": name}, 3)[:, 0]
            # A solar meter reads generation as export (negative); no row counts nothing.
            solar = np.where(np.isnan(kw), solar, solar + np.maximum(0.0, -kw))
        bess = columns(_BESS_30M, {**span, "d": battery}, 2)
        soe_end = columns(_SOE_END, {**span, "d": battery}, 1)[:, 0]
        conn.execute("SET enable_nestloop = off")
        split = columns(_SPLIT, {**span, "grid": grid, "bess": battery}, 6)
        conn.execute("RESET enable_nestloop")
        market = rows(_MARKET, span)
        price = np.full(n, np.nan)
        if market:
            at = np.array([r[0] for r in market], dtype=np.float64)
            on = _on_periods(at, n)
            values = np.array([_f(r[1]) for r in market], dtype=np.float64)
            price[at[on].astype(np.int64)] = values[on]
        sources = {str(source) for _, _, source in market}
        winners: dict[str, int] = {}
        stops: dict[str, int] = {}
        for safe, label, count in conn.execute(_DECISIONS, (db_site, start, end)):
            target = stops if safe else winners
            target[str(label)] = target.get(str(label), 0) + _n(count)
        gaps = find_gaps(conn, db_site, since=start, until=end)
        devices = tuple(str(r[0]) for r in conn.execute(_DEVICES, (db_site,)))
        first = conn.execute(_SOE_START, (db_site, battery, start, end)).fetchone()
        tol = limit_tolerances(site)
        over = conn.execute(
            _OVER,
            {
                **span,
                "d": grid,
                "imp": site.limits.site_import_kw + tol.power_kw,
                "exp": site.limits.site_export_kw + tol.power_kw,
            },
        ).fetchone()
        outside = conn.execute(
            _SOE_OUTSIDE,
            {
                **span,
                "d": battery,
                "lo": site.soe_min_kwh - tol.energy_kwh,
                "hi": site.soe_max_kwh + tol.energy_kwh,
            },
        ).fetchone()
        frequency = tuple(
            FrequencyBucket(
                _utc(r[0]),
                _n(r[1]),
                _n(r[2]),
                _n(r[3]),
                _n(r[4]),
                None if r[5] is None else _f(r[5]),
                _f(r[6] or 0.0),
                _f(r[7] or 0.0),
            )
            for r in conn.execute(_FREQUENCY_30M, (db_site, battery, start, end))
        )
        arrivals = _arrivals(conn, span)
    # A battery row's SoE mean stands in where no reading gives the period's end.
    soe = np.where(np.isnan(soe_end), bess[:, 1], soe_end)
    periods = Periods(
        start,
        grid_cols[:, 0],
        grid_cols[:, 1],
        grid_cols[:, 2],
        solar,
        bess[:, 0],
        soe,
        split,
        price,
    )
    return Record(
        db_site,
        start,
        end,
        periods,
        bool(market),
        tuple(sorted(sources)),
        winners,
        stops,
        tuple(gaps),
        devices,
        None if first is None else _f(first[0]),
        0 if over is None else _n(over[0]),
        0 if over is None else _n(over[1]),
        0 if outside is None else _n(outside[0]),
        frequency,
        arrivals,
    )


def _on_periods(index: NDArray[np.float64], n: int) -> NDArray[np.bool_]:
    """Which of the rows' period indexes (:func:`_index`) name one of the ``n`` periods: a
    row off the periods' boundaries matches none."""
    on: NDArray[np.bool_] = (index == np.floor(index)) & (index >= 0) & (index < n)
    return on


def _arrivals(conn: Any, span: dict[str, Any]) -> dict[str, Arrivals] | None:
    """Per device, when its battery and meter readings in the span reached the database."""
    import psycopg

    out: dict[str, Arrivals] = {}
    try:
        with conn.transaction():  # a savepoint: a database before 0011 lacks the column
            for table in ("flux.bess_readings", "flux.meter_readings"):
                query = _ARRIVALS.format(table=table)
                params = {**span, "late": timedelta(minutes=LATE_MINUTES)}
                for device, rows, late, worst, unknown in conn.execute(query, params):
                    out[str(device)] = Arrivals(
                        _n(rows), _n(late), None if worst is None else _f(worst), _n(unknown)
                    )
    except psycopg.errors.UndefinedColumn:
        return None
    return out
