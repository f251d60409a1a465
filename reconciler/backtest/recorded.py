"""What a real site saw and did, read back from its telemetry database for a backtest.

From the schema in ``reconciler/telemetry/sql/`` over [start, end), per settlement period:

- the site's load, reconstructed from its meters: load = grid (+ import) + solar
  generation (the solar meters' export) + battery power (+ discharge, the battery's own
  reading: measured power where recorded, else its target);
- solar: the solar meters' generation (0 on a site without one, whose load is then the
  net of load and solar);
- the imbalance price (p/kWh) and NIV (MWh) its agent fetched (the latest fetch of each
  period, from whichever source);
- what its control actually did: battery power and SoE, accounted by the same
  :class:`~reconciler.backtest.report.MetricsBuilder` as a simulated run, one sample per
  period, so it stands as the "base" beside the site file's simulated run.

Period values are means of the readings in the period (readings come at the site's
record interval, so the mean is time-weighted). A period without grid meter or battery
readings is a gap: the run is refused, naming the first one (``flux db gaps`` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.backtest.accounts import SiteAccounts
from reconciler.backtest.prices import PriceSeries, period_starts
from reconciler.backtest.profiles import SiteProfiles
from reconciler.backtest.report import BacktestResult, DayResult
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD
from reconciler.control.schedule import DayPlans, zone
from reconciler.sim.curves import HalfHourly
from reconciler.telemetry.database import connect

#: The label of a recorded run's hours (what the site's own control did).
RECORDED = "recorded"


class RecordedDataError(ValueError):
    """The database lacks what a replay needs; the message says what and where."""


@dataclass(frozen=True)
class Recorded:
    """A site's recorded inputs (profiles per home/kWp and prices) and what it did."""

    site_id: str
    profiles: SiteProfiles
    prices: PriceSeries | None
    soe_start_kwh: float
    base: BacktestResult


_MEANS = """
SELECT date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00') AS period,
       avg(power_kw)
FROM flux.meter_readings
WHERE site_id = %s AND device = %s AND time >= %s AND time < %s
GROUP BY 1 ORDER BY 1
"""

_BATTERY = """
SELECT date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00') AS period,
       avg(coalesce(actual_power_kw, target_power_kw)),
       (array_agg(soe_kwh ORDER BY time DESC))[1]
FROM flux.bess_readings
WHERE site_id = %s AND device = %s AND time >= %s AND time < %s
GROUP BY 1 ORDER BY 1
"""

_SOE_START = """
SELECT soe_kwh FROM flux.bess_readings
WHERE site_id = %s AND device = %s AND time >= %s AND time < %s
ORDER BY time LIMIT 1
"""

_MARKET = """
SELECT DISTINCT ON (type, time) type, time, value
FROM flux.market_data
WHERE site_id = %s AND type IN ('imbalance_price', 'niv') AND time >= %s AND time < %s
ORDER BY type, time, fetched_at DESC
"""

_DECISIONS = """
SELECT date_bin('30 minutes', time, timestamptz '2000-01-01 00:00+00') AS period, count(*)
FROM flux.control_decisions
WHERE site_id = %s AND time >= %s AND time < %s
GROUP BY 1
"""


def _float(value: object) -> float:
    if not isinstance(value, (int, float)):
        raise RecordedDataError(f"the database returned {value!r} where a number belongs")
    return float(value)


def _by_period(rows: list[tuple[Any, ...]]) -> dict[datetime, tuple[Any, ...]]:
    return {r[0].astimezone(UTC): r[1:] for r in rows}


def _require(
    series: dict[datetime, tuple[Any, ...]], starts: list[datetime], what: str, db_site: str
) -> None:
    missing = [t for t in starts if t not in series]
    if missing:
        raise RecordedDataError(
            f"{len(missing)} of {len(starts)} settlement periods have no {what} readings for "
            f"site {db_site!r} (the first from {missing[0].isoformat()}); choose days the "
            "site recorded (flux db gaps lists the gaps)"
        )


def load_recorded(
    url: str, site: Site, start: datetime, end: datetime, *, db_site: str | None = None
) -> Recorded:
    """The recorded inputs and actions of ``db_site`` (default: the file's site id) over
    [start, end) (aware, on settlement-period boundaries), measured against ``site``'s
    limits, rates and battery. Raises :class:`RecordedDataError` when data is missing and
    :class:`~reconciler.telemetry.errors.DatabaseUnreachable` when the database is."""
    sid = db_site or site.site.id
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    starts = period_starts(start, end)
    battery = site.devices.battery.name
    grid = site.grid_meter_name
    solar_meters = [n for n, m in site.devices.meters.items() if m.role == "solar"]
    with connect(url, option="--from-db") as conn:
        grid_kw = _by_period(conn.execute(_MEANS, (sid, grid, start, end)).fetchall())
        solar: dict[datetime, float] = {}
        for name in solar_meters:
            rows = conn.execute(_MEANS, (sid, name, start, end)).fetchall()
            for t, (kw,) in _by_period(rows).items():
                # A solar meter reads generation as export (negative).
                solar[t] = solar.get(t, 0.0) + max(0.0, -float(kw))
        bess = _by_period(conn.execute(_BATTERY, (sid, battery, start, end)).fetchall())
        first = conn.execute(_SOE_START, (sid, battery, start, end)).fetchone()
        market = conn.execute(_MARKET, (sid, start, end)).fetchall()
        decisions = _by_period(conn.execute(_DECISIONS, (sid, start, end)).fetchall())
    _require(grid_kw, starts, f"grid meter ({grid!r})", sid)
    _require(bess, starts, f"battery ({battery!r})", sid)
    assert first is not None  # there are battery readings in every period
    soe_start = _float(first[0])

    load_kw: list[float] = []
    solar_kw: list[float] = []
    battery_kw: list[float] = []
    soe_end: list[float] = []
    for t in starts:
        g = float(grid_kw[t][0])
        b = float(bess[t][0])
        s = solar.get(t, 0.0)
        load_kw.append(max(0.0, g + s + b))
        solar_kw.append(s)
        battery_kw.append(b)
        soe_end.append(float(bess[t][1]))

    prices: dict[datetime, float] = {}
    volumes: dict[datetime, float] = {}
    for kind, at, value in market:
        assert isinstance(at, datetime)
        (prices if kind == "imbalance_price" else volumes)[at.astimezone(UTC)] = _float(value)
    series = (
        PriceSeries(prices, volumes, f"imbalance prices and NIV recorded by site {sid!r}")
        if prices
        else None
    )

    homes = site.site.homes
    kwp = site.site.solar_kwp
    if homes <= 0:
        raise RecordedDataError(
            f"the site file of {site.site.id!r} says homes: 0; a replay scales the recorded "
            "load per home, so give the site's number of homes"
        )
    if kwp <= 0 and any(solar_kw):
        raise RecordedDataError(
            f"the site file of {site.site.id!r} says solar_kwp: 0 but its solar meters "
            "recorded generation; give the installed kWp"
        )
    # The plant's curves are linear between period midpoints; a half-hour either side
    # (repeating the edge values) keeps the first and last periods' means close.
    first_t = starts[0] - PERIOD
    per_home = [load_kw[0], *load_kw, load_kw[-1]]
    per_kwp = [solar_kw[0], *solar_kw, solar_kw[-1]]
    profiles = SiteProfiles(
        HalfHourly(first_t, tuple(v / homes for v in per_home)),
        HalfHourly(first_t, tuple(v / kwp if kwp > 0 else 0.0 for v in per_kwp)),
        f"reconstructed from site {sid!r}'s meters (load = grid + solar + battery)",
    )
    base = _recorded_result(
        site,
        starts,
        load_kw,
        solar_kw,
        battery_kw,
        soe_end,
        soe_start,
        prices,
        sum(int(v[0]) for v in decisions.values()),
        start,
        end,
    )
    return Recorded(sid, profiles, series, soe_start, base)


def _recorded_result(
    site: Site,
    starts: list[datetime],
    load_kw: list[float],
    solar_kw: list[float],
    battery_kw: list[float],
    soe_end: list[float],
    soe_start: float,
    prices: dict[datetime, float],
    decisions: int,
    start: datetime,
    end: datetime,
) -> BacktestResult:
    tz = zone(site.site.timezone)
    accounts = SiteAccounts(site)
    plans = DayPlans()

    days: list[DayResult] = []
    soe = soe_start
    acc = accounts.day(soe)
    day = starts[0].astimezone(tz).date()
    for i, t in enumerate(starts):
        d = t.astimezone(tz).date()
        if d != day:
            days.append(accounts.day_result(day, acc))
            acc = accounts.day(soe)
            day = d
        # Rates as ticks see them: sampled every 5 minutes, one sample each.
        for k in range(6):
            at = t + timedelta(minutes=5 * k)
            imp, exp = plans.plan(site, at).rates_at(at)
            acc.add(
                300.0,
                at + timedelta(minutes=5),
                grid_kw=load_kw[i] - solar_kw[i] - battery_kw[i],
                load_kw=load_kw[i],
                solar_kw=solar_kw[i],
                battery_kw=battery_kw[i],
                soe_kwh=soe_end[i],
                import_rate=imp,
                export_rate=exp,
                price=prices.get(t),
                winner=RECORDED,
                safe_stop=False,
            )
        accounts.mark(t + PERIOD, acc)
        soe = soe_end[i]
    days.append(accounts.day_result(day, acc))
    return accounts.result(start, end, decisions, days)
