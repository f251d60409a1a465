"""What a backtest measured: energy, money and limits, per local day and in total.

Units: energy kWh, power kW, money £ (rates are p/kWh, divided by 100), time in hours or
minutes as the field name says, SoE kWh. Signs follow DOMAIN.md: site power + import,
battery power + discharge; every metric here is a positive quantity unless its name says
otherwise (``imbalance_value_gbp`` may be negative).

``imbalance_value_gbp`` is an *indicator* of what NIV chase did, not a settlement: the sum
over ticks of battery power (kW, + discharge) x tick length (h) x the imbalance price
(p/kWh) the controller was given at that tick, in £. It is positive when the battery
discharged into high prices and charged at low ones. It ignores metering, losses paid
elsewhere, supplier terms and later settlement runs; ticks with no price add nothing (see
``priced_hours``).

``money_gbp`` is the money a run counts: the imbalance value plus the site's bill at its
rates (export value minus import cost). ``battery_value_gbp`` is that money minus the money
the same samples would have made with the battery idle (site power without the battery's),
so an idle schedule is worth exactly 0; it is what the perfect-foresight optimum
(:mod:`reconciler.backtest.optimum`) is compared with: ``captured_pct`` = battery value /
optimum value.

With a ``frequency_response`` entry in the schedule, the result also shows the SoE band
from which each such entry can deliver its contracted power for its duration
(``frequency_response`` in JSON) and, per day and in total, the hours an entry was
active and the minutes the SoE was outside its band meanwhile, by more than the same
energy tolerance as the SoE limits: the mode steers back in proportion to the distance,
so it closes in on the band's edge and then hovers about it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, tzinfo
from typing import Any

#: Label of the time when no schedule entry proposed anything (Decision.winner is None).
IDLE = "idle"
#: Decimal places kept in JSON (keeps output stable and readable; 1e-6 kWh is 1 mWh).
JSON_DIGITS = 6


def _round(value: float) -> float:
    rounded = round(value, JSON_DIGITS)
    return 0.0 if rounded == 0 else rounded  # no "-0.0" in reports


@dataclass(frozen=True)
class Metrics:
    """The metrics of one stretch of time (a local day, or the whole run).

    ``hours`` is the length covered; ``hours_by_winner`` (entry label, or ``idle``) plus
    ``safe_stop_hours`` add up to it. ``peak_import_at`` is a local instant (None when the
    site never imported). Limit breaches are counted in minutes of simulated time.
    """

    hours: float
    grid_import_kwh: float
    grid_export_kwh: float
    peak_import_kw: float
    peak_import_at: datetime | None
    load_kwh: float
    solar_kwh: float
    import_cost_gbp: float
    export_value_gbp: float
    battery_charged_kwh: float
    battery_discharged_kwh: float
    equivalent_full_cycles: float
    imbalance_value_gbp: float
    money_gbp: float
    battery_value_gbp: float
    priced_hours: float
    soe_start_kwh: float
    soe_min_kwh: float
    soe_max_kwh: float
    soe_end_kwh: float
    minutes_over_import_limit: float
    minutes_over_export_limit: float
    minutes_soe_outside_limits: float
    hours_by_winner: tuple[tuple[str, float], ...]
    safe_stop_hours: float
    #: Hours a frequency_response entry was active, and minutes the SoE was outside the
    #: band it needs meanwhile (0 without such an entry).
    frequency_response_hours: float = 0.0
    minutes_outside_frequency_band: float = 0.0

    def winner_hours(self, label: str) -> float:
        """Hours won by the entry labelled ``label`` (``idle`` for no winner), 0 if none."""
        return dict(self.hours_by_winner).get(label, 0.0)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hours_by_winner":
                out[f.name] = {label: _round(h) for label, h in value}
            elif f.name == "peak_import_at":
                out[f.name] = value.isoformat() if value is not None else None
            else:
                out[f.name] = _round(value)
        return out


#: The numeric metrics, in report order, with a title for tables (units in the title).
METRIC_TITLES: tuple[tuple[str, str], ...] = (
    ("grid_import_kwh", "grid import kWh"),
    ("grid_export_kwh", "grid export kWh"),
    ("peak_import_kw", "peak import kW"),
    ("import_cost_gbp", "import cost £ (site rates)"),
    ("export_value_gbp", "export value £ (site rates)"),
    ("imbalance_value_gbp", "imbalance value £ (indicator)"),
    ("money_gbp", "money £ (imbalance + export - import)"),
    ("battery_value_gbp", "battery value £ (money over idle)"),
    ("battery_charged_kwh", "battery charged kWh"),
    ("battery_discharged_kwh", "battery discharged kWh"),
    ("equivalent_full_cycles", "equivalent full cycles"),
    ("soe_min_kwh", "SoE min kWh"),
    ("soe_max_kwh", "SoE max kWh"),
    ("soe_end_kwh", "SoE at end kWh"),
    ("minutes_over_import_limit", "minutes over import limit"),
    ("minutes_over_export_limit", "minutes over export limit"),
    ("minutes_soe_outside_limits", "minutes SoE outside limits"),
    ("load_kwh", "load kWh"),
    ("solar_kwh", "solar kWh"),
    ("priced_hours", "hours with an imbalance price"),
    ("safe_stop_hours", "hours in safe stop"),
    ("hours", "hours"),
)
#: Shown (as rows) only when the schedule has a frequency_response entry.
FREQUENCY_TITLES: tuple[tuple[str, str], ...] = (
    ("frequency_response_hours", "hours of frequency response"),
    ("minutes_outside_frequency_band", "minutes SoE outside the frequency response band"),
)
NUMERIC_METRICS: tuple[str, ...] = tuple(name for name, _ in (*METRIC_TITLES, *FREQUENCY_TITLES))


class MetricsBuilder:
    """Accumulates samples of one stretch of time into :class:`Metrics`.

    Each sample covers ``dt_s`` seconds ending at ``at`` with the powers the plant
    reported over it; the engine feeds one per physics sub-step. Site power beyond a
    limit by more than ``power_tolerance_kw``, and SoE outside its limits by more than
    ``energy_tolerance_kwh``, count as time outside the limits. The instant of the peak
    is reported in ``tz`` (converted once, not per sample).
    """

    def __init__(
        self,
        *,
        soe_start_kwh: float,
        nameplate_kwh: float,
        import_limit_kw: float,
        export_limit_kw: float,
        soe_min_kwh: float,
        soe_max_kwh: float,
        power_tolerance_kw: float = 0.0,
        energy_tolerance_kwh: float = 0.0,
        tz: tzinfo | None = None,
    ) -> None:
        self.tz = tz
        self.nameplate_kwh = nameplate_kwh
        self.import_over = import_limit_kw + power_tolerance_kw
        self.export_over = export_limit_kw + power_tolerance_kw
        self.energy_tolerance_kwh = energy_tolerance_kwh
        self.soe_low = soe_min_kwh - energy_tolerance_kwh
        self.soe_high = soe_max_kwh + energy_tolerance_kwh
        self.seconds = 0.0
        self.grid_import_kwh = self.grid_export_kwh = 0.0
        self.peak_import_kw = 0.0
        self.peak_import_at: datetime | None = None
        self.load_kwh = self.solar_kwh = 0.0
        self.import_cost_p = self.export_value_p = self.imbalance_value_p = 0.0
        self.idle_bill_p = 0.0
        self.priced_s = 0.0
        self.charged_kwh = self.discharged_kwh = 0.0
        self.soe_start = self.soe_min = self.soe_max = self.soe_end = soe_start_kwh
        self.over_import_s = self.over_export_s = self.soe_outside_s = 0.0
        self.by_winner: dict[str, float] = {}
        self.safe_s = 0.0
        self.fr_s = self.fr_outside_s = 0.0

    def add(
        self,
        dt_s: float,
        at: datetime,
        *,
        grid_kw: float,
        load_kw: float,
        solar_kw: float,
        battery_kw: float,
        soe_kwh: float,
        import_rate: float,
        export_rate: float,
        price: float | None,
        winner: str | None,
        safe_stop: bool,
        frequency_band: tuple[float, float] | None = None,
    ) -> None:
        """One sample: powers kW, SoE kWh, rates and price p/kWh; ``winner`` is the
        winning entry's label (None: idle) unless the tick was a safe stop;
        ``frequency_band`` the SoE band (kWh) of the frequency_response entry active then
        (None: none), beyond which (by the energy tolerance) the SoE counts as outside."""
        h = dt_s / 3600.0
        self.seconds += dt_s
        if grid_kw > 0:
            kwh = grid_kw * h
            self.grid_import_kwh += kwh
            self.import_cost_p += kwh * import_rate
            if grid_kw > self.peak_import_kw:
                self.peak_import_kw = grid_kw
                self.peak_import_at = at
            if grid_kw > self.import_over:
                self.over_import_s += dt_s
        elif grid_kw < 0:
            kwh = -grid_kw * h
            self.grid_export_kwh += kwh
            self.export_value_p += kwh * export_rate
            if -grid_kw > self.export_over:
                self.over_export_s += dt_s
        # The bill had the battery been idle: the same site without the battery's power.
        idle_kw = grid_kw + battery_kw
        if idle_kw > 0:
            self.idle_bill_p += idle_kw * h * import_rate
        elif idle_kw < 0:
            self.idle_bill_p += idle_kw * h * export_rate
        self.load_kwh += load_kw * h
        self.solar_kwh += solar_kw * h
        if battery_kw > 0:
            self.discharged_kwh += battery_kw * h
        elif battery_kw < 0:
            self.charged_kwh -= battery_kw * h
        if price is not None:
            self.imbalance_value_p += battery_kw * h * price
            self.priced_s += dt_s
        self.soe_end = soe_kwh
        if soe_kwh < self.soe_min:
            self.soe_min = soe_kwh
        if soe_kwh > self.soe_max:
            self.soe_max = soe_kwh
        if soe_kwh < self.soe_low or soe_kwh > self.soe_high:
            self.soe_outside_s += dt_s
        if frequency_band is not None:
            self.fr_s += dt_s
            tol = self.energy_tolerance_kwh
            if not frequency_band[0] - tol <= soe_kwh <= frequency_band[1] + tol:
                self.fr_outside_s += dt_s
        if safe_stop:
            self.safe_s += dt_s
        else:
            key = IDLE if winner is None else winner
            self.by_winner[key] = self.by_winner.get(key, 0.0) + dt_s

    def battery_value_gbp(self) -> float:
        """The battery's value so far (£): money over the samples minus the same samples'
        money with the battery idle (see :attr:`Metrics.battery_value_gbp`)."""
        money = self.imbalance_value_p + self.export_value_p - self.import_cost_p
        return (money + self.idle_bill_p) / 100.0

    def build(self) -> Metrics:
        throughput = self.charged_kwh + self.discharged_kwh
        money = self.imbalance_value_p + self.export_value_p - self.import_cost_p
        return Metrics(
            hours=self.seconds / 3600.0,
            grid_import_kwh=self.grid_import_kwh,
            grid_export_kwh=self.grid_export_kwh,
            peak_import_kw=self.peak_import_kw,
            peak_import_at=(
                self.peak_import_at.astimezone(self.tz)
                if self.peak_import_at is not None and self.tz is not None
                else self.peak_import_at
            ),
            load_kwh=self.load_kwh,
            solar_kwh=self.solar_kwh,
            import_cost_gbp=self.import_cost_p / 100.0,
            export_value_gbp=self.export_value_p / 100.0,
            battery_charged_kwh=self.charged_kwh,
            battery_discharged_kwh=self.discharged_kwh,
            equivalent_full_cycles=throughput / 2.0 / self.nameplate_kwh,
            imbalance_value_gbp=self.imbalance_value_p / 100.0,
            money_gbp=money / 100.0,
            battery_value_gbp=self.battery_value_gbp(),
            priced_hours=self.priced_s / 3600.0,
            soe_start_kwh=self.soe_start,
            soe_min_kwh=self.soe_min,
            soe_max_kwh=self.soe_max,
            soe_end_kwh=self.soe_end,
            minutes_over_import_limit=self.over_import_s / 60.0,
            minutes_over_export_limit=self.over_export_s / 60.0,
            minutes_soe_outside_limits=self.soe_outside_s / 60.0,
            hours_by_winner=tuple(
                sorted(((k, s / 3600.0) for k, s in self.by_winner.items()), key=_winner_order)
            ),
            safe_stop_hours=self.safe_s / 3600.0,
            frequency_response_hours=self.fr_s / 3600.0,
            minutes_outside_frequency_band=self.fr_outside_s / 60.0,
        )


def _winner_order(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def combine(parts: Sequence[Metrics], nameplate_kwh: float) -> Metrics:
    """Consecutive stretches (e.g. the local days of a run) as one."""
    if not parts:
        raise ValueError("nothing to combine")

    def total(name: str) -> float:
        return math.fsum(getattr(p, name) for p in parts)

    peak = max(parts, key=lambda p: p.peak_import_kw)  # the first of equal peaks
    winners: dict[str, float] = {}
    for p in parts:
        for label, h in p.hours_by_winner:
            winners[label] = winners.get(label, 0.0) + h
    charged, discharged = total("battery_charged_kwh"), total("battery_discharged_kwh")
    return Metrics(
        hours=total("hours"),
        grid_import_kwh=total("grid_import_kwh"),
        grid_export_kwh=total("grid_export_kwh"),
        peak_import_kw=peak.peak_import_kw,
        peak_import_at=peak.peak_import_at,
        load_kwh=total("load_kwh"),
        solar_kwh=total("solar_kwh"),
        import_cost_gbp=total("import_cost_gbp"),
        export_value_gbp=total("export_value_gbp"),
        battery_charged_kwh=charged,
        battery_discharged_kwh=discharged,
        equivalent_full_cycles=(charged + discharged) / 2.0 / nameplate_kwh,
        imbalance_value_gbp=total("imbalance_value_gbp"),
        money_gbp=total("money_gbp"),
        battery_value_gbp=total("battery_value_gbp"),
        priced_hours=total("priced_hours"),
        soe_start_kwh=parts[0].soe_start_kwh,
        soe_min_kwh=min(p.soe_min_kwh for p in parts),
        soe_max_kwh=max(p.soe_max_kwh for p in parts),
        soe_end_kwh=parts[-1].soe_end_kwh,
        minutes_over_import_limit=total("minutes_over_import_limit"),
        minutes_over_export_limit=total("minutes_over_export_limit"),
        minutes_soe_outside_limits=total("minutes_soe_outside_limits"),
        hours_by_winner=tuple(sorted(winners.items(), key=_winner_order)),
        safe_stop_hours=total("safe_stop_hours"),
        frequency_response_hours=total("frequency_response_hours"),
        minutes_outside_frequency_band=total("minutes_outside_frequency_band"),
    )


@dataclass(frozen=True)
class Reference:
    """What the references (see :mod:`reconciler.backtest.optimum`) were worth over a day
    or a run: value over an idle battery, £, and equivalent full cycles."""

    optimum_gbp: float
    optimum_cycles: float
    same_day_gbp: float
    same_day_cycles: float

    def as_json(self, strategy: Metrics) -> dict[str, Any]:
        """The strategy beside the references; ``captured_pct`` is None when the optimum
        is worth nothing (nothing to capture)."""
        return {
            "strategy_gbp": _round(strategy.battery_value_gbp),
            "strategy_cycles": _round(strategy.equivalent_full_cycles),
            "optimum_gbp": _round(self.optimum_gbp),
            "optimum_cycles": _round(self.optimum_cycles),
            "captured_pct": _pct(strategy.battery_value_gbp, self.optimum_gbp),
            "same_day_gbp": _round(self.same_day_gbp),
            "same_day_cycles": _round(self.same_day_cycles),
            "same_day_captured_pct": _pct(strategy.battery_value_gbp, self.same_day_gbp),
        }


def captured_pct(value_gbp: float, optimum_gbp: float) -> float | None:
    """Strategy value as % of a reference's (None when the reference is worth nothing)."""
    if optimum_gbp <= 0.005:  # under half a penny: nothing to capture
        return None
    return 100.0 * value_gbp / optimum_gbp


def _pct(value_gbp: float, optimum_gbp: float) -> float | None:
    pct = captured_pct(value_gbp, optimum_gbp)
    return None if pct is None else round(pct, 2)


@dataclass(frozen=True)
class TracePoint:
    """A run at the end of a settlement period: its SoE (kWh) and the battery's value
    (£, over an idle battery) from the run's start to ``at``."""

    at: datetime
    soe_kwh: float
    value_gbp: float


@dataclass(frozen=True)
class DayResult:
    """One local day of a run. ``settlement_periods`` is the number of GB settlement
    periods of that day (46, 48 or 50) for a site in Europe/London, else None."""

    day: date
    settlement_periods: int | None
    metrics: Metrics

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "settlement_periods": self.settlement_periods,
            **self.metrics.as_json(),
        }


@dataclass(frozen=True)
class FrequencyBand:
    """A frequency_response entry's SoE band: from ``low_kwh`` it can discharge ``low_kw``
    and up to ``high_kwh`` store ``high_kw`` for ``duration_min`` (kWh, kW, minutes)."""

    entry: str
    low_kwh: float
    high_kwh: float
    low_kw: float
    high_kw: float
    duration_min: float

    def as_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "band_low_kwh": _round(self.low_kwh),
            "band_high_kwh": _round(self.high_kwh),
            "low_kw": _round(self.low_kw),
            "high_kw": _round(self.high_kw),
            "duration_min": _round(self.duration_min),
        }


@dataclass(frozen=True)
class BacktestResult:
    """A whole run: the site's limits it was measured against, each local day, the total.

    ``start`` and ``end`` are local instants; ``ticks`` the control decisions made. Time
    outside a limit counts only beyond the ``breach_tolerance_*`` (see
    :func:`reconciler.diff.tolerances.limit_tolerances`, the same as `flux diff`'s).
    """

    site_id: str
    timezone: str
    start: datetime
    end: datetime
    tick_s: float
    ticks: int
    nameplate_kwh: float
    import_limit_kw: float
    export_limit_kw: float
    soe_min_kwh: float
    soe_max_kwh: float
    breach_tolerance_kw: float
    breach_tolerance_kwh: float
    days: tuple[DayResult, ...]
    total: Metrics
    #: The references per local day (aligned with ``days``) and over the run, when computed.
    references: tuple[Reference, ...] = ()
    reference_total: Reference | None = None
    #: The SoE band of each frequency_response entry of the schedule (none: no such entry).
    frequency_bands: tuple[FrequencyBand, ...] = ()
    #: The run at the end of each settlement period, and the perfect-foresight optimum's
    #: (when computed) with the imbalance price of each period (its start, p/kWh; None:
    #: no price): what ``flux backtest --plot`` draws. Not in the JSON report.
    trace: tuple[TracePoint, ...] = ()
    optimum_trace: tuple[TracePoint, ...] = ()
    prices: tuple[tuple[datetime, float | None], ...] = ()

    def day(self, day: date) -> Metrics:
        for d in self.days:
            if d.day == day:
                return d.metrics
        raise KeyError(day)

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site_id,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "tick_s": self.tick_s,
            "ticks": self.ticks,
            "limits": {
                "nameplate_kwh": self.nameplate_kwh,
                "site_import_kw": self.import_limit_kw,
                "site_export_kw": self.export_limit_kw,
                "soe_min_kwh": _round(self.soe_min_kwh),
                "soe_max_kwh": _round(self.soe_max_kwh),
                "breach_tolerance_kw": _round(self.breach_tolerance_kw),
                "breach_tolerance_kwh": _round(self.breach_tolerance_kwh),
            },
            "days": [
                {
                    **d.as_json(),
                    **({"optimum": r.as_json(d.metrics)} if r is not None else {}),
                }
                for d, r in zip(self.days, self._refs(), strict=True)
            ],
            "total": {
                **self.total.as_json(),
                **(
                    {"optimum": self.reference_total.as_json(self.total)}
                    if self.reference_total is not None
                    else {}
                ),
            },
            "frequency_response": (
                {
                    "bands": [b.as_json() for b in self.frequency_bands],
                    "hours": _round(self.total.frequency_response_hours),
                    "minutes_outside_band": _round(self.total.minutes_outside_frequency_band),
                }
                if self.frequency_bands
                else None
            ),
        }

    def _refs(self) -> list[Reference | None]:
        if len(self.references) == len(self.days):
            return list(self.references)
        return [None] * len(self.days)

    def captured_pct(self) -> float | None:
        """The run's captured % of the perfect-foresight optimum (None: not computed or
        nothing to capture)."""
        if self.reference_total is None:
            return None
        return captured_pct(self.total.battery_value_gbp, self.reference_total.optimum_gbp)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Difference:
    """``this - base`` for every numeric metric, and for the hours each label won."""

    values: tuple[tuple[str, float], ...]
    hours_by_winner: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, base: Metrics, this: Metrics) -> Difference:
        labels = sorted({label for label, _ in (*base.hours_by_winner, *this.hours_by_winner)})
        return cls(
            values=tuple((n, getattr(this, n) - getattr(base, n)) for n in NUMERIC_METRICS),
            hours_by_winner=tuple(
                (label, this.winner_hours(label) - base.winner_hours(label)) for label in labels
            ),
        )

    def __getitem__(self, name: str) -> float:
        return dict(self.values)[name]

    def as_json(self) -> dict[str, Any]:
        return {
            **{name: _round(v) for name, v in self.values},
            "hours_by_winner": {label: _round(h) for label, h in self.hours_by_winner},
        }


@dataclass(frozen=True)
class Comparison:
    """Two runs over the same days (base: the file before the change) and their
    difference, this minus base, per day and in total."""

    base: BacktestResult
    this: BacktestResult
    days: tuple[tuple[date, Difference], ...]
    total: Difference

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base.as_json(),
            "this": self.this.as_json(),
            "difference": {
                "days": [{"date": d.isoformat(), **diff.as_json()} for d, diff in self.days],
                "total": self.total.as_json(),
            },
            "summary": headline(self),
        }


def compare(base: BacktestResult, this: BacktestResult) -> Comparison:
    """The difference of ``this`` from ``base``; both must cover the same local days."""
    if [d.day for d in base.days] != [d.day for d in this.days]:
        raise ValueError("the two runs do not cover the same local days")
    return Comparison(
        base=base,
        this=this,
        days=tuple(
            (b.day, Difference.of(b.metrics, t.metrics))
            for b, t in zip(base.days, this.days, strict=True)
        ),
        total=Difference.of(base.total, this.total),
    )


def _more_less(value: float, unit: str, more: str, less: str, digits: int = 0) -> str:
    amount = f"{abs(value):,.{digits}f}"
    if float(amount.replace(",", "")) == 0:
        return "the same"
    return f"{amount} {unit} {more if value > 0 else less}"


def headline(cmp: Comparison) -> str:
    """One sentence for a pull request: what the change would have done over these days."""
    t = cmp.total
    days = len(cmp.this.days)
    first, last = cmp.this.days[0].day, cmp.this.days[-1].day
    span = first.isoformat() if days == 1 else f"{first.isoformat()} to {last.isoformat()}"
    breaches_base = sum(
        getattr(cmp.base.total, n)
        for n in (
            "minutes_over_import_limit",
            "minutes_over_export_limit",
            "minutes_soe_outside_limits",
        )
    )
    breaches_this = sum(
        getattr(cmp.this.total, n)
        for n in (
            "minutes_over_import_limit",
            "minutes_over_export_limit",
            "minutes_soe_outside_limits",
        )
    )
    imb = t["imbalance_value_gbp"]
    imb_text = (
        "the same in the imbalance market"
        if abs(imb) < 0.005
        else f"£{abs(imb):,.2f} {'more' if imb > 0 else 'less'} in the imbalance market"
    )
    cost = t["import_cost_gbp"]
    cost_text = (
        "the same at the site's import rates"
        if abs(cost) < 0.005
        else f"£{abs(cost):,.2f} {'more' if cost > 0 else 'less'} at the site's import rates"
    )
    band = ""
    if cmp.base.frequency_bands or cmp.this.frequency_bands:
        band = (
            f" SoE outside the frequency response band for "
            f"{_minutes(cmp.this.total.minutes_outside_frequency_band)} minutes (base "
            f"{_minutes(cmp.base.total.minutes_outside_frequency_band)})."
        )
    captured = ""
    cb, ct = cmp.base.captured_pct(), cmp.this.captured_pct()
    if cmp.this.reference_total is not None:
        captured = (
            f" Captured of the perfect-foresight optimum: {_pct_text(ct)} (base {_pct_text(cb)})."
        )
    return (
        f"Over {span} ({days} day{'s' if days != 1 else ''}), this change would have "
        f"imported {_more_less(t['grid_import_kwh'], 'kWh', 'more', 'less')}, "
        f"exported {_more_less(t['grid_export_kwh'], 'kWh', 'more', 'less')}, paid "
        f"{cost_text} and earned {imb_text}; peak import "
        f"{_more_less(t['peak_import_kw'], 'kW', 'higher', 'lower')}; "
        f"equivalent full cycles {t['equivalent_full_cycles']:+.2f}; "
        f"{_minutes(breaches_this)} minutes outside limits (base {_minutes(breaches_base)})."
        f"{band}{captured}"
    )


def _minutes(value: float) -> str:
    """Minutes for a sentence that never rounds a breach away: 0.3 is "0.3", not "0"."""
    if value == 0:
        return "0"
    if value < 0.05:
        return "under 0.1"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _pct_text(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:.1f}%"
