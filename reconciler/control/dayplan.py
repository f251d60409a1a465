"""A memo of one local day's window occurrences, so a tick does not redo calendar sums.

Evaluating every entry's and rate's windows from scratch (local instants, zone
conversions) is most of a decision's cost. The occurrences that can contain an instant of
local day D are those starting on D or D-1; they are computed once per (site, day) here
with :func:`reconciler.control.schedule.occurrence` and then only compared. Results are
the same as :func:`~reconciler.control.schedule.active_entries` and
:func:`~reconciler.control.schedule.rates_at` (a test holds them equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from reconciler.config.model import Site, Window
from reconciler.control.schedule import ActiveEntry, occurrence, zone

Occurrences = tuple[tuple[datetime, datetime] | None, ...]


def _occurrences(windows: list[Window], day: date, site: Site) -> Occurrences:
    """Per window in order: its occurrence starting on ``day``, then on the day before."""
    tz = zone(site.site.timezone)
    out: list[tuple[datetime, datetime] | None] = []
    for window in windows:
        out.append(occurrence(window, day, tz))
        out.append(occurrence(window, day - timedelta(days=1), tz))
    return tuple(out)


def _first(occs: Occurrences, at: datetime) -> tuple[datetime, datetime] | None:
    for occ in occs:
        if occ is not None and occ[0] <= at < occ[1]:
            return occ
    return None


@dataclass(frozen=True)
class DayPlan:
    """The occurrences of every schedule entry and rate that may cover local ``day``."""

    site: Site
    day: date
    entries: tuple[Occurrences, ...]
    rates: tuple[Occurrences, ...]

    @classmethod
    def build(cls, site: Site, day: date) -> DayPlan:
        return cls(
            site,
            day,
            tuple(_occurrences(e.windows, day, site) for e in site.schedule),
            tuple(_occurrences(r.windows, day, site) for r in site.rates),
        )

    def active_entries(self, at: datetime) -> list[ActiveEntry]:
        """As :func:`reconciler.control.schedule.active_entries`, for an instant of the day."""
        found: list[ActiveEntry] = []
        for index, occs in enumerate(self.entries):
            occ = _first(occs, at)
            if occ is not None:
                entry = self.site.schedule[index]
                found.append(
                    ActiveEntry(
                        index=index,
                        entry=entry,
                        label=self.site.entry_label(index),
                        priority=entry.effective_priority,
                        start=occ[0],
                        end=occ[1],
                    )
                )
        found.sort(key=lambda a: (-a.priority, a.index))
        return found

    def rates_at(self, at: datetime) -> tuple[float, float]:
        """As :func:`reconciler.control.schedule.rates_at`: import, export p/kWh."""
        imp = exp = 0.0
        for rate, occs in zip(self.site.rates, self.rates, strict=True):
            if _first(occs, at) is not None:
                if rate.direction == "import":
                    imp += rate.p_per_kwh
                else:
                    exp += rate.p_per_kwh
        return imp, exp


_PLANS: dict[tuple[int, date], DayPlan] = {}
_KEEP = 8


def plan_for(site: Site, at: datetime) -> DayPlan:
    """The plan of the local day containing ``at`` (memoised per site object and day)."""
    day = at.astimezone(zone(site.site.timezone)).date()
    key = (id(site), day)
    plan = _PLANS.get(key)
    if plan is None or plan.site is not site:
        plan = DayPlan.build(site, day)
        if len(_PLANS) >= _KEEP:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = plan
    return plan
