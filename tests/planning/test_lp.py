"""The battery's programme: hand-computed toy days, and limits held on any inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.planning import lp

BATTERY = lp.Plant(
    charge_kw=100,
    discharge_kw=100,
    nameplate_kwh=200,
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
    x = _inputs([10, 10, 30, 30])
    got = lp.solve(BATTERY, x)
    assert lp.money_gbp(x, got) == pytest.approx(17.0)
    assert got.battery_kw[:2] == pytest.approx((-100, -100))
    assert got.soe_kwh[1] == pytest.approx(90)
    # 180 kW over the last hour, split either way between its two periods
    assert sum(got.battery_kw[2:]) == pytest.approx(180)
    assert got.soe_kwh[3] == pytest.approx(0)
    assert sum(got.discharge_kw) * 0.5 == pytest.approx(90)


def test_a_spread_smaller_than_the_losses_is_left_alone() -> None:
    # 10 p in, 10.5 p out: a kWh drawn returns 0.9 kWh worth 9.45 p. Nothing to earn.
    x = _inputs([10, 10, 10.5, 10.5])
    got = lp.solve(BATTERY, x)
    assert lp.money_gbp(x, got) == pytest.approx(0.0)
    assert got.battery_kw == pytest.approx((0, 0, 0, 0))


def test_the_cycling_cost_and_the_terminal_value_are_counted() -> None:
    # A cycling cost of 21 p/kWh discharged leaves 30 - 21 = 9 p for a kWh sold, less than
    # the 25 p/kWh energy left at the end is worth; storing at 10 p (0.9 x 25 = 22.5 p
    # kept per kWh drawn) pays, at 30 p it does not. So: charge in the cheap hour, keep it.
    x = _inputs([10, 10, 30, 30], cycling_cost=21, terminal_value=25)
    got = lp.solve(BATTERY, x)
    assert got.battery_kw == pytest.approx((-100, -100, 0, 0))
    assert got.soe_kwh[-1] == pytest.approx(90)
    assert lp.money_gbp(x, got) == pytest.approx(-10.0)  # money spent; the stock is not money


def test_a_limit_the_load_already_breaks_binds_where_the_idle_site_would_be() -> None:
    # Net load 150 kW against an import limit of 100 kW: the battery is not asked to do the
    # impossible (import may stay at 150 kW) and never makes it worse (never above 150).
    tight = lp.Plant(**{**BATTERY.__dict__, "import_limit_kw": 100})
    got = lp.solve(tight, _inputs([5, 5, 50, 50], net_load_kw=[150] * 4, soe_start_kwh=0))
    assert all(i <= 150 + 1e-6 for i in got.import_kw)
    # charging at 5 p is worth it for the 50 p periods, but only within the idle site's 150
    assert got.charge_kw[:2] == pytest.approx((0, 0))


@settings(max_examples=60, deadline=None)
@given(
    # Prices > 0: at or below zero the programme may draw and give back in one period (free or
    # paid for the losses), which the plant cannot do (a relaxation; see lp.py).
    prices=st.lists(st.floats(0.1, 200), min_size=1, max_size=96),
    soe0=st.floats(0, 200),
    data=st.data(),
)
def test_the_solution_never_leaves_the_battery_or_its_energy(
    prices: list[float], soe0: float, data: st.DataObject
) -> None:
    n = len(prices)
    net = data.draw(st.lists(st.floats(-300, 300), min_size=n, max_size=n))
    got = lp.solve(BATTERY, _inputs(prices, net_load_kw=net, soe_start_kwh=soe0))
    soe = soe0
    grid = [i - e for i, e in zip(got.import_kw, got.export_kw, strict=True)]
    for kw, end, g, load in zip(got.battery_kw, got.soe_kwh, grid, net, strict=True):
        assert -100 - 1e-6 <= kw <= 100 + 1e-6
        assert -1e-6 <= end <= 200 + 1e-6
        # the plant: charging stores kW x 0.9, discharging gives what it takes
        stored = -kw * 0.5 * 0.9 if kw < 0 else -kw * 0.5
        assert end == pytest.approx(soe + stored, abs=1e-5)
        assert g == pytest.approx(load - kw, abs=1e-5)
        soe = end


def test_at_a_negative_price_a_full_battery_burns_only_what_the_import_limit_lets_it() -> None:
    # Full, at -10 p, import limit 60 kW with 20 kW of load: charging can run at 40 kW at
    # most (not the battery's 100), discharging at 100. Stored energy cannot rise, so each
    # kWh charged must be given back x 0.9 in the same period: c/40 + 0.9c/100 = 1, and the
    # money is the 10% lost, drawn at a price that pays 10 p/kWh for 0.5 h.
    tight = lp.Plant(**{**BATTERY.__dict__, "import_limit_kw": 60})
    x = _inputs([-10.0], net_load_kw=[20.0], soe_start_kwh=200.0)
    got = lp.solve(tight, x)
    c = 1 / (1 / 40 + 0.9 / 100)
    assert got.charge_kw[0] == pytest.approx(c, rel=1e-6)
    assert got.discharge_kw[0] == pytest.approx(0.9 * c, rel=1e-6)
    assert lp.money_gbp(x, got) == pytest.approx(0.5 * 10 * 0.1 * c / 100, rel=1e-6)
    # Averaged over the period the site imports 20 + 0.1c: under 60 kW even with the
    # battery's whole 100 kW, but never in the phase that charges (20 + 100 > 60).
    assert got.import_kw[0] - got.export_kw[0] == pytest.approx(20 + 0.1 * c, rel=1e-6)
