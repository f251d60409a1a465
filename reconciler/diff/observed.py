"""What is observed: what the agent reported to the database, or the devices read live.

From the database everything is taken as of an instant ``at`` (default now): the latest
status, decision and readings at or before it, and limit breaches and telemetry gaps in
the window before it. Live reads use read-only Modbus sessions, safe beside the agent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg

from reconciler.clock import Clock, ManualClock, WallClock
from reconciler.config.model import Site
from reconciler.control.periods import SettlementPeriod
from reconciler.control.types import BatteryReading, MeterReading, PeriodValue, Signals
from reconciler.devices.errors import DeviceError
from reconciler.devices.factory import open_site_devices
from reconciler.diff.model import Source
from reconciler.diff.tolerances import Tolerances
from reconciler.markets.points import is_fresh
from reconciler.status.record import StatusRecord, parse_status_record
from reconciler.telemetry.gaps import find_gaps


@dataclass(frozen=True)
class DecisionRow:
    """The agent's latest recorded decision (kW, + discharge)."""

    at: datetime
    target_kw: float
    reason: str
    safe_stop: bool
    winner: str | None
    revision_sha: str | None


@dataclass(frozen=True)
class Breaches:
    """Readings outside a limit in the window: how many, the worst value, first and last."""

    count: int = 0
    worst: float | None = None
    first: datetime | None = None
    last: datetime | None = None


@dataclass(frozen=True)
class LimitStats:
    """Limit breaches in the window, of the grid meter (kW) and the battery's SoE (kWh)."""

    grid_readings: int
    soe_readings: int
    site_import: Breaches
    site_export: Breaches
    soe_min: Breaches
    soe_max: Breaches


@dataclass(frozen=True)
class DeviceGaps:
    """Missing minutes of one device in the window."""

    device: str
    minutes: int
    gaps: int
    longest: int
    first: datetime | None = None


@dataclass
class Observed:
    """Everything observed of one site as of ``at``; None where nothing is known."""

    source: Source
    at: datetime
    #: The agent's status, as far as this version reads it (None: none, or unreadable).
    status: StatusRecord | None = None
    #: Fields of the status this version does not know (ignored), or cannot read.
    status_unknown: tuple[str, ...] = ()
    status_invalid: tuple[str, ...] = ()
    status_at: datetime | None = None
    in_control: tuple[str, datetime] | None = None
    battery: BatteryReading | None = None
    meters: dict[str, MeterReading] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    device_settings: dict[str, float] | None = None
    settings_error: str | None = None
    decision: DecisionRow | None = None
    limits: LimitStats | None = None
    gaps: list[DeviceGaps] | None = None
    since: datetime | None = None
    last_seen: datetime | None = None
    #: The imbalance price and NIV the agent recorded as known at ``at`` (None: none).
    signals: Signals | None = None
    #: Live: why the agent's own status could not be read (its revision is then unknown).
    status_error: str | None = None


# --------------------------------------------------------------------------- database

_LATEST_BESS = """
SELECT time, soe_kwh, target_power_kw, available_blocks, command_source
FROM flux.bess_readings
WHERE site_id = %(site)s AND device = %(device)s AND time <= %(at)s
ORDER BY time DESC LIMIT 1
"""

# One index probe per device (primary key site_id, device, time), not a scan of history.
_LATEST_METERS = """
SELECT d.device, r.time, r.power_kw, r.frequency_hz
FROM unnest(%(devices)s::text[]) AS d(device)
CROSS JOIN LATERAL (
    SELECT time, power_kw, frequency_hz FROM flux.meter_readings m
    WHERE m.site_id = %(site)s AND m.device = d.device AND m.time <= %(at)s
    ORDER BY m.time DESC LIMIT 1
) r
"""

_LATEST_DECISION = """
SELECT time, target_kw, reason, safe_stop, winner, revision_sha
FROM flux.control_decisions
WHERE site_id = %(site)s AND time <= %(at)s
ORDER BY time DESC LIMIT 1
"""

_LATEST_STATUS = """
SELECT time, conditions FROM flux.agent_status
WHERE site_id = %(site)s AND time <= %(at)s
ORDER BY time DESC LIMIT 1
"""

_LATEST_IN_CONTROL = """
SELECT sha, time FROM flux.config_revisions
WHERE site_id = %(site)s AND state = 'in_control' AND time <= %(at)s
ORDER BY time DESC LIMIT 1
"""

_FIRST_READING = """
SELECT min(f.time)
FROM unnest(%(devices)s::text[]) AS d(device)
CROSS JOIN LATERAL (
    (SELECT time FROM flux.bess_readings b
     WHERE b.site_id = %(site)s AND b.device = d.device ORDER BY b.time LIMIT 1)
    UNION ALL
    (SELECT time FROM flux.meter_readings m
     WHERE m.site_id = %(site)s AND m.device = d.device ORDER BY m.time LIMIT 1)
) f
"""

# Breaches beyond a tolerance: the limit itself is not a breach.
_GRID_BREACHES = """
SELECT count(*),
       count(*) FILTER (WHERE power_kw > %(imp)s),
       max(power_kw) FILTER (WHERE power_kw > %(imp)s),
       min(time) FILTER (WHERE power_kw > %(imp)s),
       max(time) FILTER (WHERE power_kw > %(imp)s),
       count(*) FILTER (WHERE power_kw < -%(exp)s),
       min(power_kw) FILTER (WHERE power_kw < -%(exp)s),
       min(time) FILTER (WHERE power_kw < -%(exp)s),
       max(time) FILTER (WHERE power_kw < -%(exp)s)
FROM flux.meter_readings
WHERE site_id = %(site)s AND device = %(device)s AND time >= %(since)s AND time <= %(at)s
"""

_SOE_BREACHES = """
SELECT count(*),
       count(*) FILTER (WHERE soe_kwh < %(lo)s),
       min(soe_kwh) FILTER (WHERE soe_kwh < %(lo)s),
       min(time) FILTER (WHERE soe_kwh < %(lo)s),
       max(time) FILTER (WHERE soe_kwh < %(lo)s),
       count(*) FILTER (WHERE soe_kwh > %(hi)s),
       max(soe_kwh) FILTER (WHERE soe_kwh > %(hi)s),
       min(time) FILTER (WHERE soe_kwh > %(hi)s),
       max(time) FILTER (WHERE soe_kwh > %(hi)s)
FROM flux.bess_readings
WHERE site_id = %(site)s AND device = %(device)s AND time >= %(since)s AND time <= %(at)s
"""


def _breaches(row: tuple[Any, ...], offset: int) -> Breaches:
    count, worst, first, last = row[offset : offset + 4]
    return Breaches(int(count or 0), worst, first, last)


def _floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


# Per type, the value of the newest period as last fetched by ``at``. The primary key
# (site_id, type, source, time, fetched_at) serves it.
_LATEST_MARKET = """
SELECT DISTINCT ON (type) type, settlement_date, settlement_period, value
FROM flux.market_data
WHERE site_id = %(site)s AND type = ANY(%(types)s) AND source = ANY(%(sources)s)
  AND fetched_at <= %(at)s AND time > %(at)s - interval '2 hours'
ORDER BY type, time DESC, fetched_at DESC
"""
# What the agent's imbalance feed serves, in its order: live estimates (or a replay of
# them), else Elexon's settled prices (SSP as the imbalance price).
_FEEDS = (
    (("imbalance_price", "niv"), ["modo", "replay"]),
    (("system_sell_price", "niv"), ["elexon"]),
)


def market_signals(conn: psycopg.Connection[Any], site_id: str, at: datetime) -> Signals | None:
    """The imbalance price (p/kWh) and NIV (MWh) the agent had recorded by ``at``, stale
    values dropped as its feed drops them; None when it recorded none (no market
    clients, or an agent from before market data was recorded)."""
    for (price_type, volume_type), sources in _FEEDS:
        rows = conn.execute(
            _LATEST_MARKET,
            {"site": site_id, "at": at, "types": [price_type, volume_type], "sources": sources},
        ).fetchall()
        values = {
            str(kind): PeriodValue(SettlementPeriod(day, int(number)), float(value))
            for kind, day, number, value in rows
        }
        price = is_fresh(values.get(price_type), at)
        volume = is_fresh(values.get(volume_type), at)
        if price is not None or volume is not None:
            return Signals(imbalance_price=price, imbalance_volume=volume)
    return None


def read_database(
    conn: psycopg.Connection[Any],
    site: Site,
    *,
    at: datetime,
    window: timedelta,
    tolerances: Tolerances,
) -> Observed:
    """What the agent of ``site`` reported, as of ``at``, with breaches and gaps in the
    ``window`` before it (the window starts no earlier than the site's first reading)."""
    sid = site.site.id
    bat = site.devices.battery.name
    meters = list(site.devices.meters)
    params: dict[str, Any] = {"site": sid, "at": at, "device": bat}
    obs = Observed(source="database", at=at)
    _read_latest_status(conn, params, obs)
    obs.in_control = _latest_in_control(conn, params)
    obs.battery = _latest_battery(conn, params)
    obs.meters = _latest_meters(conn, params, meters)
    obs.signals = market_signals(conn, sid, at)
    obs.decision = _latest_decision(conn, params)
    obs.last_seen = _last_seen(obs)
    first = _first_reading(conn, params, [bat, *meters])
    since = at - window if first is None else max(at - window, first)
    obs.since = since
    obs.limits = _limit_stats(conn, site, {**params, "since": since}, tolerances)
    if first is not None:
        obs.gaps = _device_gaps(conn, sid, [bat, *meters], since, at, tolerances)
    return obs


def use_status(obs: Observed, data: object) -> StatusRecord | None:
    """Read the agent's status (a JSON object) into ``obs`` with this version's model;
    what does not fit is named in ``status_unknown`` and ``status_invalid``."""
    parsed = parse_status_record(data)
    obs.status = parsed.record
    obs.status_unknown = parsed.unknown
    obs.status_invalid = parsed.invalid
    return parsed.record


def _read_latest_status(
    conn: psycopg.Connection[Any], params: dict[str, Any], obs: Observed
) -> None:
    """The latest heartbeat, with the battery's settings it read back."""
    row = conn.execute(_LATEST_STATUS, params).fetchone()
    if row is None:
        return
    obs.status_at = row[0]
    data = row[1] if isinstance(row[1], dict) else json.loads(str(row[1]))
    record = use_status(obs, data)
    if record is not None:
        obs.device_settings = record.device_settings
        obs.settings_error = record.device_settings_error or None


def _latest_in_control(
    conn: psycopg.Connection[Any], params: dict[str, Any]
) -> tuple[str, datetime] | None:
    """The revision the agent last put in control, and when."""
    row = conn.execute(_LATEST_IN_CONTROL, params).fetchone()
    return (str(row[0]), row[1]) if row is not None else None


def _latest_battery(conn: psycopg.Connection[Any], params: dict[str, Any]) -> BatteryReading | None:
    row = conn.execute(_LATEST_BESS, params).fetchone()
    if row is None:
        return None
    return BatteryReading(
        at=row[0],
        soe_kwh=float(row[1]),
        target_power_kw=float(row[2]),
        available_blocks=int(row[3]),
        command_source=int(row[4]),
    )


def _latest_meters(
    conn: psycopg.Connection[Any], params: dict[str, Any], devices: list[str]
) -> dict[str, MeterReading]:
    rows = conn.execute(_LATEST_METERS, {**params, "devices": devices}).fetchall()
    return {
        str(device): MeterReading(at=t, power_kw=float(power), frequency_hz=freq)
        for device, t, power, freq in rows
    }


def _latest_decision(conn: psycopg.Connection[Any], params: dict[str, Any]) -> DecisionRow | None:
    row = conn.execute(_LATEST_DECISION, params).fetchone()
    if row is None:
        return None
    return DecisionRow(
        at=row[0],
        target_kw=float(row[1]),
        reason=str(row[2]),
        safe_stop=bool(row[3]),
        winner=row[4],
        revision_sha=row[5],
    )


def _last_seen(obs: Observed) -> datetime | None:
    """The newest of the agent's reports read into ``obs``: status, decision, readings."""
    seen = [
        t
        for t in (
            obs.status_at,
            obs.decision.at if obs.decision else None,
            obs.battery.at if obs.battery else None,
            *(m.at for m in obs.meters.values()),
        )
        if t is not None
    ]
    return max(seen) if seen else None


def _first_reading(
    conn: psycopg.Connection[Any], params: dict[str, Any], devices: list[str]
) -> datetime | None:
    """The site's first reading of any of ``devices`` (None: it never reported one)."""
    row = conn.execute(_FIRST_READING, {**params, "devices": devices}).fetchone()
    return row[0] if row else None


def _limit_stats(
    conn: psycopg.Connection[Any], site: Site, params: dict[str, Any], tolerances: Tolerances
) -> LimitStats:
    """Breaches in [``params["since"]``, ``params["at"]``] of the grid meter's import and
    export limits (kW) and the battery's SoE limits (kWh), beyond their tolerances."""
    grid = conn.execute(
        _GRID_BREACHES,
        {
            **params,
            "device": site.grid_meter_name,
            "imp": site.limits.site_import_kw + tolerances.power_kw,
            "exp": site.limits.site_export_kw + tolerances.power_kw,
        },
    ).fetchone()
    soe = conn.execute(
        _SOE_BREACHES,
        {
            **params,
            "lo": site.soe_min_kwh - tolerances.energy_kwh,
            "hi": site.soe_max_kwh + tolerances.energy_kwh,
        },
    ).fetchone()
    assert grid is not None and soe is not None  # aggregates always return a row
    return LimitStats(
        grid_readings=int(grid[0]),
        soe_readings=int(soe[0]),
        site_import=_breaches(grid, 1),
        site_export=_breaches(grid, 5),
        soe_min=_breaches(soe, 1),
        soe_max=_breaches(soe, 5),
    )


_KNOWN_DEVICES = """
SELECT device FROM flux.devices WHERE site_id = %(site)s
UNION SELECT DISTINCT device FROM flux.meter_readings
WHERE site_id = %(site)s AND time >= %(since)s AND time <= %(at)s
UNION SELECT DISTINCT device FROM flux.bess_readings
WHERE site_id = %(site)s AND time >= %(since)s AND time <= %(at)s
"""


def _device_gaps(
    conn: psycopg.Connection[Any],
    site_id: str,
    expected: list[str],
    since: datetime,
    at: datetime,
    tolerances: Tolerances,
) -> list[DeviceGaps]:
    """Missing minutes of each ``expected`` device in [``since``, ``at``), gaps no longer
    than the cadence tolerance left out."""
    # The minute ``at`` falls in is not over yet: it is not expected to hold a reading.
    start, until = _floor_minute(since), _floor_minute(at)
    found = find_gaps(conn, site_id, since=start, until=until) if until > since else []
    per: dict[str, list[int]] = {}
    starts: dict[str, datetime] = {}
    for gap in found:
        if gap.minutes <= tolerances.cadence_gap_min:
            continue
        per.setdefault(gap.device, []).append(gap.minutes)
        starts.setdefault(gap.device, gap.start)
    gaps = [
        DeviceGaps(d, sum(per[d]), len(per[d]), max(per[d]), starts[d])
        for d in expected
        if d in per
    ]
    # A device of the site file that never reported at all is one gap as long as the
    # window (find_gaps only knows devices the database has seen).
    known = _known_devices(conn, site_id, since, at)
    minutes = int((until - start).total_seconds() // 60)
    if minutes > 0:
        gaps += [DeviceGaps(d, minutes, 1, minutes, start) for d in expected if d not in known]
    return gaps


def _known_devices(
    conn: psycopg.Connection[Any], site_id: str, since: datetime, at: datetime
) -> set[str]:
    """Devices the database knows for the site, or that reported in [``since``, ``at``]."""
    params = {"site": site_id, "since": since, "at": at}
    return {str(r[0]) for r in conn.execute(_KNOWN_DEVICES, params).fetchall()}


def latest_report(conn: psycopg.Connection[Any], site_id: str) -> datetime | None:
    """When the agent of ``site_id`` last reported a status or a decision (None: never)."""
    row = conn.execute(
        "SELECT greatest("
        "(SELECT max(time) FROM flux.agent_status WHERE site_id = %(site)s), "
        "(SELECT max(time) FROM flux.control_decisions WHERE site_id = %(site)s))",
        {"site": site_id},
    ).fetchone()
    return row[0] if row is not None else None


# --------------------------------------------------------------------------- live


async def read_live(site: Site, *, at: datetime | None = None) -> Observed:
    """Read the battery (reading and writable settings) and every meter once, read-only.
    A device that cannot be read is named in ``errors`` with the reason. With ``at``, the
    readings are taken as of that instant (the schedule is evaluated then)."""
    clock: Clock = WallClock() if at is None else ManualClock(at)
    obs = Observed(source="live", at=clock.now())
    battery, meters = open_site_devices(site, clock=clock, read_only=True, connect_attempts=1)

    async def bat_read() -> None:
        try:
            obs.battery = await battery.read()
            obs.device_settings = await battery.read_settings()
        except DeviceError as exc:
            obs.errors[battery.name] = exc.detail
            obs.settings_error = str(exc)

    async def meter_read(name: str) -> None:
        try:
            obs.meters[name] = await meters[name].read()
        except DeviceError as exc:
            obs.errors[name] = exc.detail

    try:
        await asyncio.gather(bat_read(), *(meter_read(n) for n in meters))
    finally:
        await battery.close()
        for meter in meters.values():
            await meter.close()
    obs.last_seen = obs.at if (obs.battery or obs.meters) else None
    return obs


DEFAULT_AGENT_URL = "http://127.0.0.1:9464"


def read_agent_status(obs: Observed, site_id: str, url: str) -> None:
    """Add the running agent's status (``GET {url}/status``, what `flux agent status`
    shows) to a live observation, so its revision can be compared; on failure say why in
    ``status_error``. A status of another site is not used."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/status", timeout=3.0)
        response.raise_for_status()
        status = response.json()
    except httpx.HTTPError as exc:
        obs.status_error = f"cannot read the agent's status at {url}: {exc or type(exc).__name__}"
        return
    except ValueError:
        obs.status_error = f"{url}/status did not answer with JSON: is it a Flux agent?"
        return
    if not isinstance(status, dict) or status.get("site") != site_id:
        site = status.get("site") if isinstance(status, dict) else None
        obs.status_error = f"the agent at {url} runs site {site!r}, not {site_id!r}"
        return
    record = use_status(obs, status)
    if record is None:
        obs.status_error = f"the agent's status at {url} cannot be read (see agent_status)"
        return
    obs.status_at = record.updated_at
