"""The battery's programme: hand-computed toy days, and limits held on any inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.planning import lp

BATTERY = lp.Battery(
    charge_kw=100,
    discharge_kw=100,
    soe_min_kwh=0,
    soe_max_kwh=200,
    charge_efficiency=0.9,
    import_limit_kw=1000,
    export_limit_kw=1000,
)


def _inputs(price: list[float], **kw: object) -> lp.Inputs:
    n = len(price)
    base: dict[str, object] = {
        "hours": [0.5] * n,
        "net_load_kw": [0.0] * n,
        "price": price,
        "import_rate": [0.0] * n,
        "export_rate": [0.0] * n,
        "soe_start_kwh": 0.0,
    }
    base.update(kw)
    return lp.Inputs(**base)  # type: ignore[arg-type]


def test_a_two_price_day_earns_the_hand_computed_value() -> None:
    # Charge 100 kW for 1 h at 10 p: 100 kWh drawn (1,000 p), 90 kWh stored; discharge
    # the 90 kWh at 30 p (2,700 p): 1,700 p = £17.
    got = lp.solve(BATTERY, _inputs([10, 10, 30, 30]))
    assert got.value_gbp == pytest.approx(17.0)
    assert got.battery_kw[:2] == pytest.approx((-100, -100))
    assert got.soe_end_kwh[1] == pytest.approx(90)
    # 180 kW over the last hour, split either way between its two periods
    assert sum(got.battery_kw[2:]) == pytest.approx(180)
    assert got.soe_end_kwh[3] == pytest.approx(0)
    assert got.discharged_kwh == pytest.approx(90)


def test_a_spread_smaller_than_the_losses_is_left_alone() -> None:
    # 10 p in, 10.5 p out: a kWh drawn returns 0.9 kWh worth 9.45 p. Nothing to earn.
    got = lp.solve(BATTERY, _inputs([10, 10, 10.5, 10.5]))
    assert got.value_gbp == pytest.approx(0.0)
    assert got.battery_kw == pytest.approx((0, 0, 0, 0))


def test_the_cycling_cost_and_the_terminal_value_are_counted() -> None:
    # A cycling cost of 21 p/kWh discharged leaves 30 - 21 = 9 p for a kWh sold, less than
    # the 25 p/kWh energy left at the end is worth; storing at 10 p (0.9 x 25 = 22.5 p
    # kept per kWh drawn) pays, at 30 p it does not. So: charge in the cheap hour, keep it.
    got = lp.solve(BATTERY, _inputs([10, 10, 30, 30], cycling_cost=21, terminal_value=25))
    assert got.battery_kw == pytest.approx((-100, -100, 0, 0))
    assert got.soe_end_kwh[-1] == pytest.approx(90)
    assert got.value_gbp == pytest.approx(-10.0)  # the money spent; the stock is not money


def test_the_site_limits_are_kept_with_the_battery_where_they_can_be() -> None:
    # Net load 150 kW against an import limit of 100 kW: the battery must discharge 50 kW
    # every period it can; with 40 kWh it covers 80 of the 2 h, the rest is over the limit.
    tight = lp.Battery(**{**BATTERY.__dict__, "import_limit_kw": 100})
    got = lp.solve(tight, _inputs([5] * 4, net_load_kw=[150] * 4, soe_start_kwh=40))
    assert sum(got.battery_kw) * 0.5 == pytest.approx(40)
    assert all(g <= 150 for g in got.grid_kw)
    assert sum(max(0.0, g - 100) for g in got.grid_kw) * 0.5 == pytest.approx(60)


@settings(max_examples=60, deadline=None)
@given(
    # Prices > 0: at or below zero the programme may draw and give back in one period (free or
    # paid for the losses), which the plant cannot do (a relaxation; see lp.py).
    prices=st.lists(st.floats(0.1, 200), min_size=1, max_size=96),
    soe0=st.floats(0, 300),
    data=st.data(),
)
def test_the_solution_never_leaves_the_battery_or_its_energy(
    prices: list[float], soe0: float, data: st.DataObject
) -> None:
    n = len(prices)
    net = data.draw(st.lists(st.floats(-300, 300), min_size=n, max_size=n))
    got = lp.solve(BATTERY, _inputs(prices, net_load_kw=net, soe_start_kwh=soe0))
    soe = min(max(soe0, 0.0), 200.0)
    for kw, end, grid, load in zip(got.battery_kw, got.soe_end_kwh, got.grid_kw, net, strict=True):
        assert -100 - 1e-6 <= kw <= 100 + 1e-6
        assert -1e-6 <= end <= 200 + 1e-6
        # the plant: charging stores kW x 0.9, discharging gives what it takes
        stored = -kw * 0.5 * 0.9 if kw < 0 else -kw * 0.5
        assert end == pytest.approx(soe + stored, abs=1e-5)
        assert grid == pytest.approx(load - kw, abs=1e-5)
        soe = end
