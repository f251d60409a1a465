"""The metrics arithmetic, on samples fed by hand, and the base/this comparison on real runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.backtest.engine import run_backtest
from reconciler.backtest.report import (
    IDLE,
    NUMERIC_METRICS,
    BacktestResult,
    Metrics,
    MetricsBuilder,
    combine,
    compare,
    headline,
)
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from tests.backtest.conftest import run_day, site_of, variant

T0 = datetime(2024, 1, 15, 12, tzinfo=UTC)


def builder(**overrides: float) -> MetricsBuilder:
    args: dict[str, float] = {
        "soe_start_kwh": 500.0,
        "nameplate_kwh": 1000.0,
        "import_limit_kw": 200.0,
        "export_limit_kw": 300.0,
        "soe_min_kwh": 100.0,
        "soe_max_kwh": 900.0,
        "power_tolerance_kw": 1.0,
        "energy_tolerance_kwh": 0.5,
    }
    args.update(overrides)
    return MetricsBuilder(**args)  # type: ignore[arg-type]


def feed(
    b: MetricsBuilder,
    seconds: int,
    *,
    start: datetime = T0,
    grid_kw: float = 0.0,
    battery_kw: float = 0.0,
    soe_kwh: float = 500.0,
    import_rate: float = 0.0,
    export_rate: float = 0.0,
    price: float | None = None,
    winner: str | None = None,
    safe_stop: bool = False,
) -> datetime:
    """``seconds`` one-second samples with constant values; returns the end instant."""
    at = start
    for _ in range(seconds):
        at += timedelta(seconds=1)
        b.add(
            1.0,
            at,
            grid_kw=grid_kw,
            load_kw=max(grid_kw + battery_kw, 0.0),
            solar_kw=max(-(grid_kw + battery_kw), 0.0),
            battery_kw=battery_kw,
            soe_kwh=soe_kwh,
            import_rate=import_rate,
            export_rate=export_rate,
            price=price,
            winner=winner,
            safe_stop=safe_stop,
        )
    return at


def test_import_energy_cost_peak_and_limit_minutes() -> None:
    b = builder()
    end = feed(b, 1800, grid_kw=150.0, import_rate=10.0, winner="a")  # 75 kWh at 10 p
    feed(b, 120, start=end, grid_kw=210.0, import_rate=20.0, winner="a")  # 7 kWh at 20 p
    m = b.build()
    assert m.grid_import_kwh == pytest.approx(75 + 7)
    assert m.import_cost_gbp == pytest.approx((75 * 10 + 7 * 20) / 100)
    assert m.peak_import_kw == 210.0 and m.peak_import_at == end + timedelta(seconds=1)
    assert m.minutes_over_import_limit == pytest.approx(2.0)  # 210 > 200 + 1
    assert m.grid_export_kwh == 0 and m.minutes_over_export_limit == 0
    assert m.hours == pytest.approx(1920 / 3600)


def test_within_the_tolerance_is_not_a_breach() -> None:
    b = builder()
    end = feed(b, 600, grid_kw=200.9, soe_kwh=99.6)  # inside 1 kW and 0.5 kWh
    feed(b, 60, start=end, grid_kw=-301.5, soe_kwh=900.6)  # export and SoE beyond them
    m = b.build()
    assert m.minutes_over_import_limit == 0
    assert m.minutes_over_export_limit == pytest.approx(1.0)
    assert m.minutes_soe_outside_limits == pytest.approx(1.0)
    assert m.soe_min_kwh == 99.6 and m.soe_max_kwh == 900.6 and m.soe_end_kwh == 900.6


def test_export_value_battery_energy_cycles_and_imbalance_value() -> None:
    b = builder()
    # An hour discharging 100 kW at 30 p/kWh, exporting 50 kW at 5 p/kWh ...
    end = feed(b, 3600, grid_kw=-50.0, battery_kw=100.0, export_rate=5.0, price=30.0)
    # ... and an hour charging 200 kW at -2 p/kWh, then an hour charging with no price.
    end = feed(b, 3600, start=end, grid_kw=150.0, battery_kw=-200.0, price=-2.0)
    feed(b, 3600, start=end, grid_kw=150.0, battery_kw=-200.0, price=None)
    m = b.build()
    assert m.grid_export_kwh == pytest.approx(50)
    assert m.export_value_gbp == pytest.approx(50 * 5 / 100)
    assert m.battery_discharged_kwh == pytest.approx(100)
    assert m.battery_charged_kwh == pytest.approx(400)
    assert m.equivalent_full_cycles == pytest.approx(500 / 2 / 1000)
    # + discharging into a high price, + charging at a negative one; unpriced adds nothing.
    assert m.imbalance_value_gbp == pytest.approx((100 * 30 + (-200) * (-2)) / 100)
    assert m.priced_hours == pytest.approx(2.0)


def test_hours_by_winner_idle_and_safe_stops_apart() -> None:
    b = builder()
    end = feed(b, 1800, winner="niv")
    end = feed(b, 900, start=end, winner=None)
    end = feed(b, 360, start=end, winner="niv", safe_stop=True)
    m = b.build()
    assert dict(m.hours_by_winner) == {"niv": pytest.approx(0.5), IDLE: pytest.approx(0.25)}
    assert m.safe_stop_hours == pytest.approx(0.1)
    assert m.winner_hours("niv") + m.winner_hours(IDLE) + m.safe_stop_hours == pytest.approx(
        m.hours
    )
    assert m.winner_hours("never") == 0


def test_combine_sums_and_extremes() -> None:
    a, b = builder(), builder(soe_start_kwh=480.0)
    feed(a, 3600, grid_kw=100.0, battery_kw=-50.0, soe_kwh=480.0, winner="x")
    feed(b, 3600, grid_kw=250.0, battery_kw=20.0, soe_kwh=460.0, winner="y")
    ma, mb = a.build(), b.build()
    total = combine([ma, mb], nameplate_kwh=1000.0)
    assert total.grid_import_kwh == pytest.approx(ma.grid_import_kwh + mb.grid_import_kwh)
    assert total.peak_import_kw == 250.0 and total.peak_import_at == mb.peak_import_at
    assert total.soe_start_kwh == 500.0 and total.soe_end_kwh == 460.0
    assert total.soe_min_kwh == 460.0 and total.soe_max_kwh == 500.0
    assert total.minutes_over_import_limit == pytest.approx(60.0)
    assert dict(total.hours_by_winner) == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}
    assert total.equivalent_full_cycles == pytest.approx((50 + 20) / 2 / 1000)
    with pytest.raises(ValueError):
        combine([], nameplate_kwh=1.0)


def test_json_is_plain_and_rounded() -> None:
    b = builder()
    feed(b, 10, grid_kw=1 / 3)
    doc = b.build().as_json()
    assert set(NUMERIC_METRICS) <= set(doc)
    assert doc["grid_import_kwh"] == round(10 / 3 / 3600, 6)
    assert doc["peak_import_at"] == (T0 + timedelta(seconds=1)).isoformat()
    assert doc["hours_by_winner"] == {IDLE: round(10 / 3600, 6)}


# --------------------------------------------------------------------------- comparison

#: Discharge harder at moderate prices: a real change of the weekday NIV chase curve.
CURVE_EDIT = (
    "        - {price: 18, soe: 1000}\n        - {price: 25, soe: 1000}\n",
    "        - {price: 18, soe: 600}\n        - {price: 25, soe: 600}\n",
)


@pytest.fixture(scope="module")
def changed_curve() -> BacktestResult:
    return run_day(site_of(variant(*CURVE_EDIT)))


def _numbers(m: Metrics) -> dict[str, float]:
    return {name: getattr(m, name) for name in NUMERIC_METRICS}


def test_differences_are_the_per_metric_subtraction(
    demo_day: BacktestResult, changed_curve: BacktestResult
) -> None:
    cmp = compare(demo_day, changed_curve)
    pairs = [(cmp.total, demo_day.total, changed_curve.total)]
    pairs += [
        (diff, b.metrics, t.metrics)
        for (day, diff), b, t in zip(cmp.days, demo_day.days, changed_curve.days, strict=True)
        if day == b.day == t.day
    ]
    assert len(pairs) == 1 + len(demo_day.days)
    for diff, base, this in pairs:
        for name, value in _numbers(this).items():
            assert diff[name] == value - _numbers(base)[name], name
        for label, hours in diff.hours_by_winner:
            assert hours == this.winner_hours(label) - base.winner_hours(label)
    doc = cmp.as_json()
    assert doc["difference"]["total"]["grid_import_kwh"] == pytest.approx(
        changed_curve.total.grid_import_kwh - demo_day.total.grid_import_kwh, abs=1e-6
    )


def test_a_changed_curve_makes_a_difference(
    demo_day: BacktestResult, changed_curve: BacktestResult
) -> None:
    cmp = compare(demo_day, changed_curve)
    assert abs(cmp.total["battery_discharged_kwh"]) > 1
    assert abs(cmp.total["imbalance_value_gbp"]) > 0.01
    assert cmp.total["load_kwh"] == 0  # same site, same days: only the control differs
    text = headline(cmp)
    more = "more" if cmp.total["grid_import_kwh"] > 0 else "less"
    assert f"imported {abs(cmp.total['grid_import_kwh']):,.0f} kWh {more}" in text


def test_the_same_file_makes_no_difference(demo_day: BacktestResult) -> None:
    cmp = compare(demo_day, demo_day)
    assert all(v == 0 for _, v in cmp.total.values)
    assert "imported the same" in headline(cmp)


def test_runs_over_other_days_cannot_be_compared(demo_site: Site, demo_day: BacktestResult) -> None:
    start = local_midnight(demo_site, demo_day.days[0].day + timedelta(days=1))
    other = run_backtest(demo_site, start, start + timedelta(hours=1), signals=None)
    with pytest.raises(ValueError, match="same local days"):
        compare(demo_day, other)


def test_the_headline_never_rounds_a_breach_away(demo_day: BacktestResult) -> None:
    import dataclasses

    for minutes, said in ((0.3, "0.3"), (0.01, "under 0.1"), (12.25, "12.2"), (250.4, "250")):
        total = dataclasses.replace(demo_day.total, minutes_over_import_limit=minutes)
        this = dataclasses.replace(demo_day, total=total)
        text = headline(compare(demo_day, this))
        base = demo_day.total
        assert base.minutes_over_import_limit == base.minutes_over_export_limit == 0
        assert f"; {said} minutes outside limits (base" in text, text
