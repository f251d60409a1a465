"""The accounts of a run on a site: one metrics builder per local day against the site's
limits (with `flux diff`'s tolerances), and the run's result. Shared by the simulated
backtest (engine.py) and the replay of recorded days (recorded.py)."""

from __future__ import annotations

from datetime import date, datetime

from reconciler.backtest.report import (
    BacktestResult,
    DayResult,
    FrequencyBand,
    MetricsBuilder,
    TracePoint,
    combine,
)
from reconciler.config.model import FrequencyResponseEntry, Site
from reconciler.control.modes.frequency_response import band_kwh
from reconciler.control.periods import periods_in_day
from reconciler.control.schedule import zone
from reconciler.diff.tolerances import limit_tolerances


class SiteAccounts:
    """Builders and results for one run on ``site``: its local days in turn, and the run
    at the end of each settlement period (:meth:`mark`)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.tz = zone(site.site.timezone)
        # The same tolerances as `flux diff`: overshoot of a tick's worth is not a breach.
        self.tolerances = limit_tolerances(site)
        self._london = site.site.timezone == "Europe/London"
        self._trace: list[TracePoint] = []
        #: The battery value (£) of the days finished so far.
        self._done_gbp = 0.0

    def mark(self, at: datetime, acc: MetricsBuilder) -> None:
        """The run at ``at``, the end of a settlement period, with ``acc`` the day's
        builder so far: its SoE and the battery's value since the run began."""
        self._trace.append(TracePoint(at, acc.soe_end, self._done_gbp + acc.battery_value_gbp()))

    def day(self, soe_start_kwh: float) -> MetricsBuilder:
        """A builder for a local day starting at ``soe_start_kwh`` (kWh)."""
        site, limits = self.site, self.site.limits
        return MetricsBuilder(
            soe_start_kwh=soe_start_kwh,
            nameplate_kwh=site.devices.battery.nameplate_energy_kwh,
            import_limit_kw=limits.site_import_kw,
            export_limit_kw=limits.site_export_kw,
            soe_min_kwh=site.soe_min_kwh,
            soe_max_kwh=site.soe_max_kwh,
            power_tolerance_kw=self.tolerances.power_kw,
            energy_tolerance_kwh=self.tolerances.energy_kwh,
            tz=self.tz,
        )

    def day_result(self, day: date, acc: MetricsBuilder) -> DayResult:
        """A finished local day (with its settlement-period count in Great Britain)."""
        metrics = acc.build()
        self._done_gbp += metrics.battery_value_gbp
        return DayResult(day, periods_in_day(day) if self._london else None, metrics)

    def result(
        self, start: datetime, end: datetime, ticks: int, days: list[DayResult]
    ) -> BacktestResult:
        """The run from ``start`` to ``end`` (aware), its ``ticks`` decisions and days."""
        site, limits = self.site, self.site.limits
        nameplate = site.devices.battery.nameplate_energy_kwh
        return BacktestResult(
            site_id=site.site.id,
            timezone=site.site.timezone,
            start=start.astimezone(self.tz),
            end=end.astimezone(self.tz),
            tick_s=site.control.tick_s,
            ticks=ticks,
            nameplate_kwh=nameplate,
            import_limit_kw=limits.site_import_kw,
            export_limit_kw=limits.site_export_kw,
            soe_min_kwh=site.soe_min_kwh,
            soe_max_kwh=site.soe_max_kwh,
            breach_tolerance_kw=self.tolerances.power_kw,
            breach_tolerance_kwh=self.tolerances.energy_kwh,
            days=tuple(days),
            total=combine([d.metrics for d in days], nameplate),
            frequency_bands=frequency_bands(site),
            trace=tuple(self._trace),
        )


def frequency_bands(site: Site) -> tuple[FrequencyBand, ...]:
    """The SoE band of each frequency_response entry of ``site``'s schedule."""
    out: list[FrequencyBand] = []
    for index, entry in enumerate(site.schedule):
        if isinstance(entry, FrequencyResponseEntry):
            low, high = band_kwh(site, entry.params)
            p = entry.params
            label = site.entry_label(index)
            out.append(FrequencyBand(label, low, high, p.low_kw, p.high_kw, p.duration_min))
    return tuple(out)
