"""The perfect-foresight optimum: limits kept, hand-computed toys, and never beaten."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reconciler.backtest.engine import run_backtest
from reconciler.backtest.optimum import (
    DT_H,
    Inputs,
    Plant,
    Solution,
    breaches,
    idle_money_gbp,
    inputs_for,
    references,
    solve,
    solve_by_day,
)
from reconciler.backtest.prices import named
from reconciler.backtest.profiles import shipped_year
from reconciler.backtest.report import BacktestResult, captured_pct
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from tests.backtest.conftest import ROOT, demo_text, site_of, variant

TOY_PLANT = Plant(
    charge_kw=100.0,
    discharge_kw=100.0,
    nameplate_kwh=100.0,
    charge_efficiency=0.8,
    soe_min_kwh=0.0,
    soe_max_kwh=100.0,
    import_limit_kw=1000.0,
    export_limit_kw=1000.0,
)


def toy(
    prices: list[float], load: float = 0.0, import_rate: float = 0.0, day: date | None = None
) -> Inputs:
    n = len(prices)
    start = datetime(2024, 7, 1, tzinfo=UTC)
    d = day or date(2024, 7, 1)
    return Inputs(
        tuple(start + i * timedelta(minutes=30) for i in range(n)),
        (d,) * n,
        (load,) * n,
        (0.0,) * n,
        tuple(prices),
        (import_rate,) * n,
        (0.0,) * n,
    )


def test_two_price_day_equals_the_hand_computed_value() -> None:
    # 2 p/kWh for 12 h, then 10 p/kWh: fill 100 kWh from empty (125 kWh drawn at 80%),
    # sell 100 kWh. (100 x 10 - 125 x 2) p = £7.50.
    x = toy([2.0] * 24 + [10.0] * 24)
    sol = solve(x, TOY_PLANT, 0.0)
    assert sol.value_gbp() == pytest.approx(7.50, abs=1e-6)
    assert sol.cycles() == pytest.approx((125 + 100) / 2 / 100)
    assert sum(sol.charge_kw[:24]) * DT_H == pytest.approx(125.0)
    assert sum(sol.discharge_kw[24:]) * DT_H == pytest.approx(100.0)
    assert sol.soe_kwh[-1] == pytest.approx(0.0, abs=1e-6)


def test_two_price_day_with_a_load_an_import_limit_and_a_rate() -> None:
    # An 80 kW load under a 100 kW import limit leaves 20 kW to charge with; every kWh
    # imported costs 1 p more. Imbalance: 100 x 10 - 125 x 2 = 750 p. Bill: 125 kWh more
    # imported to charge, 100 kWh less imported while discharging into the load: -25 p.
    plant = Plant(**{**TOY_PLANT.__dict__, "import_limit_kw": 100.0})
    x = toy([2.0] * 24 + [10.0] * 24, load=80.0, import_rate=1.0)
    sol = solve(x, plant, 0.0)
    assert sol.value_gbp() == pytest.approx(7.25, abs=1e-6)
    assert max(sol.import_kw) <= 100.0 + 1e-6
    assert idle_money_gbp(x) == pytest.approx(-80 * 24 * 1.0 / 100)
    assert breaches(sol, plant) == []


def test_flat_prices_are_worth_nothing_and_losses_are_avoided() -> None:
    sol = solve(toy([5.0] * 48), TOY_PLANT, 50.0)
    # Only selling the 50 kWh held pays: 50 x 5 p.
    assert sol.value_gbp() == pytest.approx(2.50, abs=1e-6)
    assert sum(sol.charge_kw) == pytest.approx(0.0, abs=1e-6)


def test_same_day_foresight_carries_soe_and_never_beats_the_optimum() -> None:
    # Day 1 is flat and cheap, day 2 expensive: only full foresight stores for day 2.
    day1 = toy([2.0] * 48, day=date(2024, 7, 1))
    day2 = toy([10.0] * 48, day=date(2024, 7, 2))
    x = Inputs(
        *(a + b for a, b in zip(day1.__dict__.values(), day2.__dict__.values(), strict=True))
    )
    best, daily = solve(x, TOY_PLANT, 20.0), solve_by_day(x, TOY_PLANT, 20.0)
    # Full foresight: store 80 kWh more (100 kWh drawn at 2 p), sell 100 kWh at 10 p.
    assert best.value_gbp() == pytest.approx((100 * 10 - 100 * 2) / 100, abs=1e-6)
    # Knowing only day 1, the 20 kWh held are sold at 2 p; day 2 starts empty.
    assert daily.value_gbp() == pytest.approx(20 * 2 / 100, abs=1e-6)
    assert daily.soe_kwh[47] == pytest.approx(0.0, abs=1e-6)
    assert breaches(daily, TOY_PLANT) == []


def check_limits(
    site: Site, x: Inputs, soe: list[float], battery: list[float], start: float
) -> None:
    """The site file's limits, checked on a schedule without the optimum module's help."""
    lim = site.limits
    prev = start
    for i in range(len(x)):
        b = battery[i]
        assert -lim.battery_charge_kw - 1e-6 <= b <= lim.battery_discharge_kw + 1e-6
        assert site.soe_min_kwh - 1e-6 <= soe[i] <= site.soe_max_kwh + 1e-6
        stored = -b * lim.charge_efficiency if b < 0 else -b
        assert soe[i] == pytest.approx(prev + stored * DT_H, abs=1e-3)
        prev = soe[i]
        grid = x.load_kw[i] - x.solar_kw[i] - b
        idle = x.load_kw[i] - x.solar_kw[i]
        assert grid <= max(lim.site_import_kw, idle) + 1e-6
        assert -grid <= max(lim.site_export_kw, -idle) + 1e-6


def test_the_optimum_keeps_every_limit_of_the_site_file(demo_site: Site) -> None:
    # A volatile week over the autumn clock change, with a tight import limit so it binds.
    text = variant("  site_import_kw: 220\n", "  site_import_kw: 60\n")
    site = site_of(text)
    start = local_midnight(site, date(2018, 10, 25))
    end = local_midnight(site, date(2018, 10, 30))
    x = inputs_for(site, start, end, prices=named("2018-10"), profiles=shipped_year(start, end))
    assert len(x) == 5 * 48 + 2
    refs = references(x, Plant.of(site), 600.0)
    for sol in (refs.optimum, refs.same_day):
        # Net battery power: charging and discharging in one period share its time.
        battery = [d - c for c, d in zip(sol.charge_kw, sol.discharge_kw, strict=True)]
        assert all(
            c * d == 0 or c / 565 + d / 565 <= 1 + 1e-9
            for c, d in zip(sol.charge_kw, sol.discharge_kw, strict=True)
        )
        check_limits(site, x, list(sol.soe_kwh), battery, 600.0)
        assert breaches(sol, Plant.of(site)) == []
    assert refs.optimum_gbp >= refs.same_day_gbp - 1e-6 > 0
    assert sum(d.optimum_gbp for d in refs.days) == pytest.approx(refs.optimum_gbp)


# ------------------------------------------------------------------ against real strategies

DAY = date(2018, 10, 29)  # a Monday: red band, NIV chase and import avoidance all take part


def run_with_optimum(
    site: Site, first: date, days: int, month: str
) -> tuple[BacktestResult, float]:
    start = local_midnight(site, first)
    end = local_midnight(site, first + timedelta(days=days))
    prices = named(month)
    profiles = shipped_year(start, end)
    result = run_backtest(
        site,
        start,
        end,
        signals=prices.signals(wrap=True),
        load=profiles.load_per_home,
        solar=profiles.solar_per_kwp,
    )
    x = inputs_for(site, start, end, prices=prices, profiles=profiles, wrap=True)
    refs = references(x, Plant.of(site), result.days[0].metrics.soe_start_kwh)
    return result, refs.optimum_gbp


@pytest.mark.slow
def test_an_idle_schedule_captures_nothing() -> None:
    text = demo_text()
    head, tail = text.split("\nschedule:\n")
    idle = site_of(head + "\nschedule: []\n\nmarkets:" + tail.split("\nmarkets:")[1])
    # Two days over the autumn clock change (50 periods).
    result, optimum_gbp = run_with_optimum(idle, date(2018, 10, 27), 2, "2018-10")
    assert result.total.battery_charged_kwh == result.total.battery_discharged_kwh == 0
    assert result.total.battery_value_gbp == 0.0
    assert optimum_gbp > 10
    assert captured_pct(result.total.battery_value_gbp, optimum_gbp) == 0.0


STRATEGIES = {
    "demo": demo_text(),
    "hmce": (ROOT / "sites" / "hmce.yaml").read_text(encoding="utf-8"),
    "import avoidance first": variant(
        "  - mode: import_avoidance\n", "  - mode: import_avoidance\n    priority: 65\n"
    ),
    "eager weekday charging": variant(
        "        - {price: 6, soe: 1000}\n        - {price: 12, soe: 0}\n",
        "        - {price: 9, soe: 1000}\n        - {price: 15, soe: 0}\n",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_no_strategy_beats_the_optimum(name: str) -> None:
    site = site_of(STRATEGIES[name])
    result, optimum_gbp = run_with_optimum(site, DAY, 1, "2018-10")
    value = result.total.battery_value_gbp
    assert result.total.equivalent_full_cycles > 0.1  # it did something
    assert value <= optimum_gbp + 1e-6, (value, optimum_gbp)
    pct = captured_pct(value, optimum_gbp)
    assert pct is not None and pct < 100


def test_a_charge_shared_with_a_discharge_over_the_import_limit_is_a_breach() -> None:
    # 50 kW of load under a 100 kW import limit: charging runs at 50 kW at most. A period
    # of 80 kW charge and 64 kW discharge (SoE unchanged at 80%) averages 66 kW of import,
    # under the limit, but the phase that charges would import 130 kW: not a schedule.
    plant = Plant(**{**TOY_PLANT.__dict__, "import_limit_kw": 100.0})
    x = toy([-10.0], load=50.0)
    bad = Solution(x, (80.0,), (64.0,), (66.0,), (0.0,), (50.0,), 50.0, 100.0)
    assert any("over what the site allows" in b for b in breaches(bad, plant))
    shared = Solution(x, (40.0,), (32.0,), (58.0,), (0.0,), (50.0,), 50.0, 100.0)
    assert any("together exceed" in b for b in breaches(shared, plant))
    # What the optimum does there instead keeps every limit.
    assert breaches(solve(x, plant, 50.0), plant) == []
