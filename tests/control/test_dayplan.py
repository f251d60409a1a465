"""The day memo gives exactly what the schedule module computes from scratch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.loader import load_site
from reconciler.config.model import Site
from reconciler.control.schedule import (
    DayPlans,
    active_entries,
    occurrence_at,
    rates_at,
    zone,
)
from tests.control.helpers import make_site, utc

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_site(ROOT / "sites" / "demo.yaml")
OVERNIGHT = make_site(
    [
        {
            "mode": "charge_to_soe",
            "windows": [{"start": "23:30", "end": "01:30"}],
            "params": {"target_soe": 900},
        },
        {"mode": "idle", "windows": [{"days": ["sun"], "start": "01:00", "end": "02:00"}]},
        {"mode": "import_avoidance", "windows": [{"days": "weekdays", "start": "00:30"}]},
    ],
    rates=[
        {
            "name": "night",
            "direction": "import",
            "p_per_kwh": 1.5,
            "windows": [{"start": "22:00", "end": "02:00"}],
        }
    ],
)
DAYS = [utc(2024, 1, 8), utc(2024, 3, 30), utc(2024, 10, 26), utc(2024, 6, 1)]
# One memo fed every example in turn, as the loop feeds its memo tick after tick: a plan
# made for one instant must answer for every other instant of the same local day, and be
# rebuilt for another day or another site.
PLANS = DayPlans()


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DEMO, OVERNIGHT]),
    st.sampled_from(DAYS),
    st.integers(0, 3 * 24 * 3600),
)
def test_same_as_schedule(site: object, day0: object, seconds: int) -> None:
    assert isinstance(site, Site)
    at = day0 + timedelta(seconds=seconds)  # type: ignore[operator]
    plan = PLANS.plan(site, at)
    assert plan.active_entries(at) == active_entries(site, at)
    assert plan.rates_at(at) == rates_at(site.rates, at, zone(site.site.timezone))


def _reference(site: Site, at: datetime) -> tuple[list[tuple[int, datetime, datetime]], float]:
    """Entries active at ``at`` (index, start, end, highest priority first) and the import
    rate, from each window's own occurrence (checked against wall-clock times in
    tests/config/test_schedule_properties.py)."""
    tz = zone(site.site.timezone)
    found = []
    for index, entry in enumerate(site.schedule):
        occs = [o for w in entry.windows if (o := occurrence_at(w, at, tz)) is not None]
        if occs:
            found.append((-entry.effective_priority, index, occs[0][0], occs[0][1]))
    imp = sum(
        r.p_per_kwh
        for r in site.rates
        if r.direction == "import" and any(occurrence_at(w, at, tz) for w in r.windows)
    )
    return [(i, s, e) for _, i, s, e in sorted(found)], imp


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DEMO, OVERNIGHT]),
    st.sampled_from(DAYS),
    st.lists(st.integers(0, 3 * 24 * 3600), min_size=1, max_size=20),
)
def test_a_memo_reused_through_the_days_matches_each_windows_own_occurrence(
    site: Site, day0: datetime, offsets: list[int]
) -> None:
    plans = DayPlans()
    for seconds in sorted(offsets):
        at = (day0 + timedelta(seconds=seconds)).astimezone(UTC)
        plan = plans.plan(site, at)
        assert plan.day == at.astimezone(zone(site.site.timezone)).date()
        entries, imp = _reference(site, at)
        assert [(a.index, a.start, a.end) for a in plan.active_entries(at)] == entries
        assert plan.rates_at(at)[0] == imp


def test_a_new_site_object_gets_its_own_plan() -> None:
    plans = DayPlans()
    at = utc(2024, 1, 8, 12)
    first = plans.plan(DEMO, at)
    assert plans.plan(DEMO, at + timedelta(hours=1)) is first
    other = plans.plan(OVERNIGHT, at)
    assert other.site is OVERNIGHT and other is not first
