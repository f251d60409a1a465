"""The day memo gives exactly what the schedule module computes from scratch."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.loader import load_site
from reconciler.control.dayplan import plan_for
from reconciler.control.schedule import active_entries, rates_at, zone
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


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DEMO, OVERNIGHT]),
    st.sampled_from([utc(2024, 1, 8), utc(2024, 3, 30), utc(2024, 10, 26), utc(2024, 6, 1)]),
    st.integers(0, 3 * 24 * 3600),
)
def test_same_as_schedule(site: object, day0: object, seconds: int) -> None:
    from reconciler.config.model import Site

    assert isinstance(site, Site)
    at = day0 + timedelta(seconds=seconds)  # type: ignore[operator]
    plan = plan_for(site, at)
    assert plan.active_entries(at) == active_entries(site, at)
    assert plan.rates_at(at) == rates_at(site.rates, at, zone(site.site.timezone))
