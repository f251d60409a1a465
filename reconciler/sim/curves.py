"""Half-hourly load and solar profiles, interpolated to any instant.

The default profiles are real data shipped in ``reconciler/sim/data`` (see SOURCES.md):
one home's load and one kWp of solar, from a community microgrid in January 2023.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from importlib import resources

HALF_HOUR_S = 1800.0
_MIDPOINT_S = HALF_HOUR_S / 2


@dataclass(frozen=True)
class HalfHourly:
    """Average power (kW) per half-hour from ``start`` (UTC); the series repeats."""

    start: datetime
    kw: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.kw:
            raise ValueError("a profile needs at least one half-hour")

    # Worked out once: the plant asks for the load and the solar every second simulated.
    @cached_property
    def span_s(self) -> float:
        return len(self.kw) * HALF_HOUR_S

    def at(self, when: datetime) -> float:
        """Power (kW) at ``when``: linear between half-hour midpoints, wrapping around."""
        kw = self.kw
        t = ((when - self.start).total_seconds() - _MIDPOINT_S) % self.span_s
        i = int(t // HALF_HOUR_S)
        frac = (t - i * HALF_HOUR_S) / HALF_HOUR_S
        a = kw[i]
        b = kw[(i + 1) % len(kw)]
        return a + (b - a) * frac

    def scaled(self, factor: float) -> HalfHourly:
        return HalfHourly(self.start, tuple(v * factor for v in self.kw))

    def mean_kw(self) -> float:
        return sum(self.kw) / len(self.kw)


def parse_energy_csv(text: str, per: float = 1.0) -> HalfHourly:
    """A ``UTCTime, ClockTime, energy`` CSV of half-hourly kWh as kW, divided by ``per``.

    An empty energy cell reads as 0 (the shipped solar file ends with one).
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError("the profile has no rows")
    starts = [datetime.fromisoformat(r["UTCTime"]).astimezone(UTC) for r in rows]
    for a, b in itertools.pairwise(starts):
        if b - a != timedelta(minutes=30):
            raise ValueError(f"the profile is not contiguous half-hours at {a.isoformat()}")
    kw = tuple(2.0 * float(r["energy"] or 0.0) / per for r in rows)
    return HalfHourly(starts[0], kw)


def _data(name: str) -> str:
    return (resources.files("reconciler.sim") / "data" / name).read_text(encoding="utf-8")


@cache
def load_per_home() -> HalfHourly:
    """One home's load (kW), January 2023 (12 homes' measured total / 12)."""
    return parse_energy_csv(_data("load12_2023_01.csv"), per=12.0)


@cache
def solar_per_kwp() -> HalfHourly:
    """Output of one kWp of PV (kW), January 2023 (a 4.4 kWp system / 4.4)."""
    return parse_energy_csv(_data("solar_2023_01.csv"), per=4.4)
