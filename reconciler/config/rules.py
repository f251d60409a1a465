"""Cross-field rules: what a structurally valid site must also satisfy.

Each rule returns :class:`Finding` objects naming a path into the site file (the same
path the YAML has, e.g. ``('schedule', 2, 'params', 'charge_curve')``); the loader turns
paths into file:line:col. Errors make the site invalid; warnings are shown but do not.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pydantic import ValidationError

from reconciler.config.model import (
    WEEKDAYS,
    CurvePoint,
    DynamicPeakApproachEntry,
    NivChaseEntry,
    ReserveEntry,
    Site,
    Window,
    day_matches,
    parse_hhmm,
)
from reconciler.config.profiles import Profile, Register, builtin_profile_names
from reconciler.config.resolve import builtin_profile, resolve_profile_base

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """A rule's verdict at a path of the site file.

    ``anchor`` says where to point: ``key`` at the field's name, ``value`` at its value
    (for a mapping or list value, the key is used either way).
    """

    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"
    anchor: Literal["key", "value"] = "value"


def check_rules(site: Site) -> list[Finding]:
    """Every cross-field error and warning of a site."""
    found: list[Finding] = []
    for rule in RULES:
        found.extend(rule(site))
    return found


def _kwh(value: float) -> str:
    return f"{value:g} kWh"


# --------------------------------------------------------------------------- devices


def _profile_rules(site: Site) -> Iterator[Finding]:
    known = sorted(set(builtin_profile_names()) | set(site.profiles))
    for name, ext in site.profiles.items():
        if ext.extends not in known:
            yield Finding(
                ("profiles", name, "extends"), _unknown("profile", ext.extends, known, exclude=name)
            )
            continue
        try:
            base = resolve_profile_base(site, ext.extends, seen={name})
        except (KeyError, ValueError) as exc:
            yield Finding(("profiles", name, "extends"), _text(exc))
            continue
        for reg_name, override in ext.registers.items():
            changes = override.model_dump(exclude_none=True)
            if reg_name in base.registers:
                merged = base.registers[reg_name].model_dump() | changes
            elif "address" not in changes or "type" not in changes:
                yield Finding(
                    ("profiles", name, "registers", reg_name),
                    f"register {reg_name!r} is not in profile {ext.extends!r}; "
                    "a new register needs at least address and type",
                    anchor="key",
                )
                continue
            else:
                merged = changes
            try:
                Register.model_validate(merged)
            except ValidationError as exc:
                yield Finding(
                    ("profiles", name, "registers", reg_name),
                    "; ".join(_text(e.get("ctx", {}).get("error", e["msg"])) for e in exc.errors()),
                    anchor="key",
                )

    devices: list[tuple[Loc, str, Literal["battery", "meter"]]] = [
        (("devices", "battery", "profile"), site.devices.battery.profile, "battery")
    ]
    devices += [
        (("devices", "meters", n, "profile"), m.profile, "meter")
        for n, m in site.devices.meters.items()
    ]
    for loc, name, kind in devices:
        if name not in known:
            yield Finding(loc, _unknown("profile", name, known))
            continue
        profile = _profile_or_none(site, name)
        if profile is not None and profile.kind != kind:
            yield Finding(
                loc,
                f"profile {name!r} is a {profile.kind} profile; this device needs a {kind} profile",
            )


def _profile_or_none(site: Site, name: str) -> Profile | None:
    try:
        if name in site.profiles:
            return resolve_profile_base(site, name, seen=set())
        return builtin_profile(name)
    except (KeyError, ValueError, ValidationError):
        return None  # reported by the profile's own findings


def _text(exc: object) -> str:
    text = str(exc.args[0]) if isinstance(exc, Exception) and exc.args else str(exc)
    return text.removeprefix("Value error, ")


def _unknown(what: str, name: str, known: Sequence[str], exclude: str | None = None) -> str:
    choices = [k for k in known if k != exclude]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(choices) or 'none'}"
    return f"unknown {what} {name!r}; {hint}"


def _device_rules(site: Site) -> Iterator[Finding]:
    grid = [n for n, m in site.devices.meters.items() if m.role == "grid"]
    if not grid:
        yield Finding(
            ("devices", "meters"),
            "no meter has role grid; exactly one meter must measure the site boundary",
        )
    for extra in grid[1:]:
        yield Finding(
            ("devices", "meters", extra, "role"),
            f"meters {grid[0]!r} and {extra!r} both have role grid; exactly one may",
        )
    battery = site.devices.battery
    if battery.name in site.devices.meters:
        yield Finding(
            ("devices", "meters", battery.name),
            f"device name {battery.name!r} is also the battery's name; device names must be unique",
            anchor="key",
        )
    seen: dict[tuple[str, int], str] = {(battery.host, battery.port): battery.name}
    for name, meter in site.devices.meters.items():
        addr = (meter.host, meter.port)
        if addr in seen:
            yield Finding(
                ("devices", "meters", name, "host"),
                f"{meter.host}:{meter.port} is also used by {seen[addr]!r}; fine behind one "
                "gateway with different unit ids, otherwise one of them is wrong",
                severity="warning",
            )
        else:
            seen[addr] = name


# --------------------------------------------------------------------------- limits


def _limit_rules(site: Site) -> Iterator[Finding]:
    battery, limits = site.devices.battery, site.limits
    nameplate = battery.nameplate_energy_kwh
    lo, hi = site.soe_min_kwh, site.soe_max_kwh
    if hi > nameplate:
        yield Finding(
            ("limits", "soe_max"),
            f"soe_max {_kwh(hi)} is above the battery's nameplate energy {_kwh(nameplate)}",
        )
    if lo >= hi:
        yield Finding(
            ("limits", "soe_min"), f"soe_min ({_kwh(lo)}) must be below soe_max ({_kwh(hi)})"
        )
    for field in ("battery_charge_kw", "battery_discharge_kw"):
        value = getattr(limits, field)
        if value > battery.nameplate_power_kw:
            yield Finding(
                ("limits", field),
                f"{value:g} kW is above the battery's nameplate power "
                f"{battery.nameplate_power_kw:g} kW",
            )


def _timing_rules(site: Site) -> Iterator[Finding]:
    """Timings that would stop the battery or blind the agent, whatever else is right."""
    battery, control = site.devices.battery, site.control
    # The heartbeat toggles with each command, and commands go out once per tick at most:
    # a tick longer than half the timeout lets the battery stop itself between ticks.
    if control.tick_s * 2 > battery.heartbeat_timeout_s:
        yield Finding(
            ("control", "tick_s"),
            f"a {control.tick_s:g} s tick is more than half the battery's heartbeat timeout "
            f"({battery.heartbeat_timeout_s} s): the battery would stop between ticks; "
            "shorten tick_s or lengthen devices.battery.heartbeat_timeout_s",
        )
    age = site.limits.max_reading_age_s
    devices: list[tuple[Loc, float]] = [
        (("devices", "battery", "poll_interval_s"), battery.poll_interval_s)
    ]
    devices += [
        (("devices", "meters", name, "poll_interval_s"), m.poll_interval_s)
        for name, m in site.devices.meters.items()
    ]
    for loc, interval in devices:
        if max(interval, control.tick_s) >= age:
            yield Finding(
                loc,
                f"polled every {max(interval, control.tick_s):g} s but readings older than "
                f"limits.max_reading_age_s ({age:g} s) are stale: control would always be "
                "stopped; poll more often or raise max_reading_age_s",
            )


# --------------------------------------------------------------------------- windows


def _window_rules(site: Site) -> Iterator[Finding]:
    groups: list[tuple[Loc, Sequence[Window]]] = [
        (("schedule", i, "windows"), e.windows) for i, e in enumerate(site.schedule)
    ]
    groups += [(("rates", i, "windows"), r.windows) for i, r in enumerate(site.rates)]
    for base, windows in groups:
        for j, w in enumerate(windows):
            if w.start == w.end or w.start == "24:00":
                yield Finding(
                    (*base, j, "end"),
                    f"window is empty: it starts and ends at {w.end}"
                    if w.start == w.end
                    else "a window cannot start at 24:00; write 00:00",
                )
            if w.dates is not None and w.dates.from_ > w.dates.to:
                yield Finding(
                    (*base, j, "dates"),
                    f"dates run backwards: from {w.dates.from_} is after to {w.dates.to}",
                )


def _valid(w: Window) -> bool:
    return (
        w.start != w.end and w.start != "24:00" and (w.dates is None or w.dates.from_ <= w.dates.to)
    )


_REFERENCE_MONDAY = date(2024, 1, 1)
_DAY = timedelta(days=1)


def _minutes(hhmm: str) -> int:
    h, m = parse_hhmm(hhmm)
    return h * 60 + m


def _intervals(w: Window, days: Sequence[date]) -> list[tuple[int, int]]:
    """Wall-clock occurrences of ``w`` starting on ``days``, in minutes from days[0]."""
    start, end = _minutes(w.start), _minutes(w.end)
    if end <= start:
        end += 24 * 60
    out = []
    for day in days:
        if day_matches(w, day):
            base = (day - days[0]).days * 24 * 60
            out.append((base + start, base + end))
    return out


def _describe_instant(first_day: date, minute: int) -> str:
    day = first_day + timedelta(days=minute // (24 * 60))
    m = minute % (24 * 60)
    return f"{WEEKDAYS[day.weekday()]} {m // 60:02d}:{m % 60:02d}"


def _overlap_rules(site: Site) -> Iterator[Finding]:
    entries = list(enumerate(site.schedule))
    for (i, a), (j, b) in itertools.combinations(entries, 2):
        if a.effective_priority != b.effective_priority:
            continue
        for wa, wb in itertools.product(a.windows, b.windows):
            hit = _overlap_instant(wa, wb)
            if hit is not None:
                yield Finding(
                    ("schedule", j),
                    f"{site.entry_label(j)!r} and {site.entry_label(i)!r} (schedule[{i}]) both "
                    f"have priority {a.effective_priority} and are both active at {hit}; "
                    "give one a different priority or make the windows not overlap",
                    anchor="key",
                )
                break


def _overlap_instant(a: Window, b: Window) -> str | None:
    if not (_valid(a) and _valid(b)):
        return None
    # Without dates, start the day after a Monday so the scan (from lo - 1) begins on Monday.
    lo = max((w.dates.from_ for w in (a, b) if w.dates), default=_REFERENCE_MONDAY + _DAY)
    hi = min((w.dates.to for w in (a, b) if w.dates), default=lo + timedelta(days=7))
    hi = min(hi, lo + timedelta(days=8))
    first = lo - timedelta(days=1)
    if hi < first:
        return None
    # One day past hi: a window that starts then can meet one that ran past midnight.
    days = [first + timedelta(days=n) for n in range((hi - first).days + 2)]
    for sa, ea in _intervals(a, days):
        for sb, eb in _intervals(b, days):
            start = max(sa, sb)
            if start < min(ea, eb):
                if a.dates is None and b.dates is None:
                    return _describe_instant(first, start)
                day = first + timedelta(days=start // (24 * 60))
                return f"{day.isoformat()} {_describe_instant(first, start)[4:]}"
    return None


# --------------------------------------------------------------------------- modes


def _curve_findings(base: Loc, curve: Sequence[CurvePoint], nameplate: float) -> Iterator[Finding]:
    for k in range(1, len(curve)):
        if not curve[k].price > curve[k - 1].price:
            yield Finding(
                base,
                f"prices must increase; got {curve[k].price:g} after {curve[k - 1].price:g}",
                anchor="key",
            )
            break
    for k in range(1, len(curve)):
        if curve[k].soe > curve[k - 1].soe:
            yield Finding(
                base,
                "SoE must not rise as the price rises; "
                f"got {curve[k].soe:g} after {curve[k - 1].soe:g}",
                anchor="key",
            )
            break
    for k, point in enumerate(curve):
        if math.isnan(point.price):
            yield Finding((*base, k, "price"), "price must be a number, not .nan")
        if point.soe > nameplate:
            yield Finding(
                (*base, k, "soe"),
                f"SoE {_kwh(point.soe)} is above the battery's nameplate energy {_kwh(nameplate)}",
            )


def _mode_rules(site: Site) -> Iterator[Finding]:
    nameplate = site.devices.battery.nameplate_energy_kwh
    lo, hi = site.soe_min_kwh, site.soe_max_kwh
    markets = site.markets

    def target(loc: Loc, value: float | str | None) -> Iterator[Finding]:
        if value is None:
            return
        kwh = site.energy_kwh(value)
        if not lo <= kwh <= hi:
            yield Finding(
                loc,
                f"{_kwh(kwh)} is outside the SoE limits [{lo:g}, {hi:g}] kWh; "
                "the battery will stop at the limit",
                severity="warning",
            )

    for i, entry in enumerate(site.schedule):
        here: Loc = ("schedule", i)
        if entry.mode == "axle" and markets.axle is None:
            yield Finding(
                (*here, "mode"),
                "mode axle needs markets.axle (base_url, asset_id, username_env, password_env)",
            )
        if isinstance(entry, NivChaseEntry):
            params = entry.params
            yield from _curve_findings(
                (*here, "params", "charge_curve"), params.charge_curve, nameplate
            )
            yield from _curve_findings(
                (*here, "params", "discharge_curve"), params.discharge_curve, nameplate
            )
            if markets.modo is None and params.default_price is None:
                yield Finding(
                    (*here, "mode"),
                    "never active without a price: configure markets.modo or set "
                    "params.default_price",
                    severity="warning",
                )
        elif entry.mode in ("charge_to_soe", "discharge_to_soe"):
            yield from target((*here, "params", "target_soe"), entry.params.target_soe)
        elif isinstance(entry, DynamicPeakApproachEntry):
            params_a = entry.params
            if _minutes(params_a.peak_end) <= _minutes(params_a.peak_start):
                yield Finding(
                    (*here, "params", "peak_end"),
                    f"peak_end {params_a.peak_end} must be after peak_start {params_a.peak_start}",
                )
            yield from target((*here, "params", "to_soe"), params_a.to_soe)
            yield from target((*here, "params", "encourage_to_soe"), params_a.encourage_to_soe)
        elif isinstance(entry, ReserveEntry):
            yield from target((*here, "params", "reserve_soe"), entry.params.reserve_soe)


#: Modo allows about one call a minute across its two endpoints (docs/domain.md).
MODO_MIN_POLL_S = 60.0


def _market_rules(site: Site) -> Iterator[Finding]:
    markets = site.markets
    if markets.modo is not None and markets.modo.poll_s < MODO_MIN_POLL_S:
        yield Finding(
            ("markets", "modo", "poll_s"),
            f"Modo allows about one call a minute across both endpoints; every "
            f"{markets.modo.poll_s:g} s will be rate limited (HTTP 429) and back off",
            severity="warning",
        )
    if markets.axle is not None and not any(e.mode == "axle" for e in site.schedule):
        yield Finding(
            ("markets", "axle"),
            "no schedule entry has mode axle: the Axle schedule is fetched and delivery "
            "reported, but dispatches are never followed; add `- mode: axle` to the schedule",
            severity="warning",
        )


RULES = (
    _profile_rules,
    _device_rules,
    _limit_rules,
    _timing_rules,
    _window_rules,
    _overlap_rules,
    _mode_rules,
    _market_rules,
)
