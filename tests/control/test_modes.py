"""Each mode on its own: exact components, hand-computed (the sums are in the comments).

The test site (helpers.BASE): 1,000 kWh, caps 400 kW charge and discharge, efficiency 0.8,
import limit 200 kW, export limit 300 kW, soe 50..950 kWh. Times are January, so UK local
time equals UTC. At 12:10 a settlement period (12:00-12:30) is 600 s in, 1,200 s (1/3 h)
left.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.control.modes import propose
from reconciler.control.periods import period_at
from reconciler.control.types import AxleStep, PeriodValue, Plan, PlanStep, Signals
from tests.control.helpers import ctx_for, live, make_site, utc

AT = utc(2024, 1, 10, 12, 10)  # a Wednesday
SP = period_at(AT)
EARLY = utc(2024, 1, 10, 12, 5)  # 300 s into the same period, 1,500 s left


def expect(comp: Any, target: float | None, lo: float | None, hi: float | None) -> None:
    assert comp is not None, "mode was inactive"
    assert (comp.target_kw, comp.min_kw, comp.max_kw) == (
        pytest.approx(target) if target is not None else None,
        pytest.approx(lo) if lo is not None else None,
        pytest.approx(hi) if hi is not None else None,
    )


# --------------------------------------------------------------------------- niv chase

NIV = {
    "mode": "niv_chase",
    "params": {
        "charge_curve": [
            {"price": float("-inf"), "soe": 800},
            {"price": 4, "soe": 800},
            {"price": 12, "soe": 0},
        ],
        "discharge_curve": [
            {"price": 10, "soe": 1000},
            {"price": 30, "soe": 0},
            {"price": float("inf"), "soe": 0},
        ],
        "curve_shift_short": 2,
        "curve_shift_long": 6,
        "prediction": {"when_short": {"allow": True, "min_abs_niv_mwh": 150}},
    },
}
RATES = [
    {"name": "duos", "direction": "import", "p_per_kwh": 1.0},
    {"name": "export-fee", "direction": "export", "p_per_kwh": 0.5},
]


@pytest.mark.parametrize(
    ("at", "signals", "default_price", "soe", "expected"),
    [
        # short, live: discharge price 20 - 0.5 + 2 = 21.5 -> curve 1000 - 11.5 * 50 = 425 kWh;
        # SoE 600 is 175 kWh above; 175 kWh / (1/3 h) = 525 kW, lower may discharge harder
        (AT, live(SP, 20, 100), None, 600, (525, 525, None)),
        # long, live: charge price 5 + 1 - 6 = 0 -> flat part, 800 kWh; 200 kWh below;
        # 200 / 0.8 = 250 kWh drawn / (1/3 h) = 750 kW charge, lower may charge harder
        (AT, live(SP, 5, -200), None, 600, (-750, None, -750)),
        # balanced: charge price 9 -> 800 - 5 * 100 = 300 kWh (SoE above: no charge);
        # discharge price 7.5 is left of the discharge curve: nothing to do
        (AT, live(SP, 8, 0), None, 600, None),
        # no prediction, default 2 p/kWh, no shift: charge price 3 -> 800 kWh -> -750 kW
        (AT, Signals(), 2.0, 600, (-750, None, -750)),
        # no prediction and no default: inactive
        (AT, Signals(), None, 600, None),
        # live data 300 s into the period is not trusted yet (live_after_s 600)
        (EARLY, live(SP, 20, 100), None, 600, None),
        # previous period short by 300 MWh (>= 150) stands in 300 s into the period:
        # 175 kWh over the 1,500 s left = 420 kW
        (EARLY, live(SP.previous(), 20, 300), None, 600, (420, 420, None)),
        # previous period short by only 100 MWh (< 150): no prediction
        (EARLY, live(SP.previous(), 20, 100), None, 600, None),
        # previous period long: when_long not allowed
        (EARLY, live(SP.previous(), 5, -300), None, 600, None),
        # data two periods old: never
        (AT, live(SP.previous().previous(), 20, 300), None, 600, None),
    ],
)
def test_niv_chase(
    at: Any, signals: Signals, default_price: float | None, soe: float, expected: Any
) -> None:
    entry = {**NIV, "params": {**NIV["params"], "default_price": default_price}}  # type: ignore[dict-item]
    site = make_site([entry], rates=RATES)
    comp = propose(ctx_for(site, at, soe=soe, site_kw=0, signals=signals))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)
        assert comp is not None and comp.source == "niv_chase#0" and comp.priority == 60


def test_niv_chase_note_names_price_and_direction() -> None:
    site = make_site([NIV], rates=RATES)
    comp = propose(ctx_for(site, AT, soe=600, site_kw=0, signals=live(SP, 20, 100)))
    assert comp is not None
    assert "price 20.0 p/kWh short (live)" in comp.note
    assert "175 kWh above discharge curve" in comp.note


# --------------------------------------------------------------------------- to soe

TO_SOE_WINDOW = [{"start": "10:00", "end": "14:00"}]


@pytest.mark.parametrize(
    ("mode", "params", "at", "soe", "expected"),
    [
        # 1 h left; (900 - 600) / 0.8 = 375 kWh drawn -> 375 kW, lower may charge harder
        ("charge_to_soe", {"target_soe": 900}, utc(2024, 1, 10, 13), 600, (-375, None, -375)),
        # same, capped by max_kw
        (
            "charge_to_soe",
            {"target_soe": 900, "max_kw": 150},
            utc(2024, 1, 10, 13),
            600,
            (-150, None, -150),
        ),
        # 15 min left: 1,500 kW wanted, capped by the 400 kW battery
        ("charge_to_soe", {"target_soe": 900}, utc(2024, 1, 10, 13, 45), 600, (-400, None, -400)),
        # target given as a percentage: 90% of 1,000 kWh is the same 900 kWh
        ("charge_to_soe", {"target_soe": "90%"}, utc(2024, 1, 10, 13), 600, (-375, None, -375)),
        # already there
        ("charge_to_soe", {"target_soe": 900}, utc(2024, 1, 10, 13), 900, None),
        # 1 h left; 500 - 200 = 300 kWh -> 300 kW, lower may discharge harder
        ("discharge_to_soe", {"target_soe": 200}, utc(2024, 1, 10, 13), 500, (300, 300, None)),
        (
            "discharge_to_soe",
            {"target_soe": 200, "max_kw": 100},
            utc(2024, 1, 10, 13),
            500,
            (100, 100, None),
        ),
        ("discharge_to_soe", {"target_soe": 200}, utc(2024, 1, 10, 13), 150, None),
    ],
)
def test_to_soe(mode: str, params: dict[str, Any], at: Any, soe: float, expected: Any) -> None:
    site = make_site([{"mode": mode, "windows": TO_SOE_WINDOW, "params": params}])
    comp = propose(ctx_for(site, at, soe=soe, site_kw=0))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)


def test_to_soe_uses_the_window_end_across_midnight() -> None:
    # window 22:00-02:00; at 01:00 one hour is left (not 21 h to a same-day 02:00)
    site = make_site(
        [
            {
                "mode": "charge_to_soe",
                "windows": [{"start": "22:00", "end": "02:00"}],
                "params": {"target_soe": 900},
            }
        ]
    )
    comp = propose(ctx_for(site, utc(2024, 1, 11, 1), soe=600, site_kw=0))
    expect(comp, -375, None, -375)


# --------------------------------------------------------------------------- avoidance


@pytest.mark.parametrize(
    ("mode", "params", "site_kw", "last", "expected"),
    [
        # importing 120 kW with the battery at +30: 150 kW cancels it; lower may go harder
        ("import_avoidance", {}, 120, 30, (150, 150, None)),
        # margin 10 kW: aim at 10 kW of export
        ("import_avoidance", {"margin_kw": 10}, 120, 30, (160, 160, None)),
        # exporting 80 kW at +30: residual -50; only a floor: charge at most 50 kW
        ("import_avoidance", {}, -80, 30, (None, -50, None)),
        # exporting 80 kW at +30: charge 50 kW; lower may charge harder
        ("export_avoidance", {}, -80, 30, (-50, None, -50)),
        # importing 120 kW at +30: only a ceiling: discharge at most 150 kW
        ("export_avoidance", {}, 120, 30, (None, None, 150)),
        ("export_avoidance", {"margin_kw": 20}, -80, 30, (-70, None, -70)),
    ],
)
def test_avoidance(
    mode: str, params: dict[str, Any], site_kw: float, last: float, expected: Any
) -> None:
    site = make_site([{"mode": mode, "params": params}])
    expect(propose(ctx_for(site, AT, soe=500, site_kw=site_kw, last=last)), *expected)


@pytest.mark.parametrize(
    ("at", "signals", "expected"),
    [
        (AT, live(SP, 30, 150), (150, 150, None)),  # short by 150 >= 100: avoid import
        (AT, live(SP, 30, 50), None),  # short by 50 < 100
        (AT, live(SP, 3, -400), None),  # long
        (AT, Signals(), None),  # no prediction
        (EARLY, live(SP.previous(), 30, 300), (150, 150, None)),  # previous short stands in
        (EARLY, live(SP.previous(), 3, -300), None),  # a long previous period never does
    ],
)
def test_import_avoidance_when_short(at: Any, signals: Signals, expected: Any) -> None:
    site = make_site(
        [
            {
                "mode": "import_avoidance_when_short",
                "params": {"min_niv_mwh": 100, "prediction": {"when_short": {"allow": True}}},
            }
        ]
    )
    comp = propose(ctx_for(site, at, soe=500, site_kw=120, last=30, signals=signals))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)


# --------------------------------------------------------------------------- axle


def _steps(action: str, allow: bool = False) -> Signals:
    step = AxleStep(utc(2024, 1, 10, 12), utc(2024, 1, 10, 13), action, allow)  # type: ignore[arg-type]
    return Signals(axle_steps=(step,))


@pytest.mark.parametrize(
    ("signals", "honour", "expected"),
    [
        (_steps("charge_max"), True, (-400, -400, -400)),  # held at the battery's cap
        (_steps("discharge_max"), True, (400, 400, 400)),
        # deviation allowed: lower priorities may move it toward 0 but not past
        (_steps("charge_max", True), True, (-400, -400, 0)),
        (_steps("discharge_max", True), True, (400, 0, 400)),
        (_steps("discharge_max", True), False, (400, 400, 400)),
        (_steps("avoid_import"), True, (150, 150, None)),  # as import avoidance
        (_steps("avoid_export"), True, (None, None, 150)),  # as export avoidance
        (Signals(), True, None),  # no step
    ],
)
def test_axle(signals: Signals, honour: bool, expected: Any) -> None:
    site = make_site([{"mode": "axle", "params": {"honour_allow_deviation": honour}}])
    comp = propose(ctx_for(site, AT, soe=500, site_kw=120, last=30, signals=signals))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)


def test_axle_step_must_cover_the_instant() -> None:
    later = AxleStep(utc(2024, 1, 10, 13), utc(2024, 1, 10, 14), "charge_max")
    site = make_site([{"mode": "axle"}])
    ctx = ctx_for(site, AT, soe=500, site_kw=0, signals=Signals(axle_steps=(later,)))
    assert propose(ctx) is None


# --------------------------------------------------------------------------- reserve, idle


@pytest.mark.parametrize(
    ("soe", "expected"),
    [
        (200, (-50, None, -50)),  # below the 300 kWh reserve: recharge at 50 kW
        (300, (None, None, 0)),  # at it: no discharge
        # 0.2 kWh above: one 4 s tick may discharge at most 0.2 / (4/3600) = 180 kW
        (300.2, (None, None, 180)),
        (301, None),  # 1 kWh above allows 900 kW, more than the battery can: no bound
    ],
)
def test_reserve(soe: float, expected: Any) -> None:
    site = make_site([{"mode": "reserve", "params": {"reserve_soe": 300, "recharge_kw": 50}}])
    comp = propose(ctx_for(site, AT, soe=soe, site_kw=0))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)


def test_idle_holds_zero() -> None:
    site = make_site([{"mode": "idle"}])
    expect(propose(ctx_for(site, AT, soe=500, site_kw=150)), 0, 0, 0)


# --------------------------------------------------------------------------- dynamic peak

PEAK_WINDOW = [{"start": "17:00", "end": "19:00"}]


def _peak(params: dict[str, Any]) -> Any:
    return make_site([{"mode": "dynamic_peak_discharge", "windows": PEAK_WINDOW, "params": params}])


PEAK_SP = period_at(utc(2024, 1, 10, 17, 10))


@pytest.mark.parametrize(
    ("params", "at", "soe", "site_kw", "signals", "expected"),
    [
        # 17:30, 1.5 h left; 660 - 100 = 560 kWh at 400 kW takes 1.4 h: not yet forced.
        # No prediction; prioritise residual load: hold import avoidance at 100 kW
        ({"target_soe": 100}, utc(2024, 1, 10, 17, 30), 660, 100, Signals(), (100, 100, 100)),
        # same, not prioritising residual load: wait, but no charging in the peak
        (
            {"target_soe": 100, "prioritise_residual_load": False},
            utc(2024, 1, 10, 17, 30),
            660,
            100,
            Signals(),
            (None, 0, None),
        ),
        # 18:50: 1.4 h of energy, 10 min left -> full power
        ({"target_soe": 100}, utc(2024, 1, 10, 18, 50), 660, 100, Signals(), (400, 400, 400)),
        # 17:10 short (live): residual 100 kW * 1.833 h = 183 kWh < 560 spare -> full power
        (
            {"target_soe": 100},
            utc(2024, 1, 10, 17, 10),
            660,
            100,
            live(PEAK_SP, 40, 200),
            (400, 400, 400),
        ),
        # 17:10 short, residual 350 kW * 1.833 h = 642 kWh > 560: keep it, cover the load
        (
            {"target_soe": 100},
            utc(2024, 1, 10, 17, 10),
            660,
            350,
            live(PEAK_SP, 40, 200),
            (350, 350, 350),
        ),
        # 17:10 long: cover the residual load only
        (
            {"target_soe": 100},
            utc(2024, 1, 10, 17, 10),
            660,
            100,
            live(PEAK_SP, 4, -200),
            (100, 100, 100),
        ),
        # SoE below the target: nothing to give, and no charging in the peak
        ({"target_soe": 100}, utc(2024, 1, 10, 17, 30), 90, 100, Signals(), (None, 0, None)),
        # target below soe_min (50) is clamped to it: 60 - 50 = 10 kWh at 400 kW needs
        # 1.5 min, 1.5 h left, no prediction, site exporting: only the no-charge bound
        ({"target_soe": 0}, utc(2024, 1, 10, 17, 30), 60, -50, Signals(), (None, 0, None)),
        # exporting 250 kW: the 300 kW export limit leaves 50 kW of discharge; 560 kWh
        # at 50 kW needs 11.2 h > 1.5 h left -> full power (the envelope cuts it)
        ({"target_soe": 100}, utc(2024, 1, 10, 17, 30), 660, -250, Signals(), (400, 400, 400)),
    ],
)
def test_dynamic_peak_discharge(
    params: dict[str, Any], at: Any, soe: float, site_kw: float, signals: Signals, expected: Any
) -> None:
    comp = propose(ctx_for(_peak(params), at, soe=soe, site_kw=site_kw, signals=signals))
    expect(comp, *expected)


APPROACH = {
    "peak_start": "17:00",
    "peak_end": "19:00",
    "to_soe": 800,
    "assumed_charge_kw": 200,
    "force_charge_duration_factor": 1,
    "cushion_min": 20,
}


@pytest.mark.parametrize(
    ("params", "at", "soe", "signals", "expected"),
    [
        # approach: 800 / 200 / 0.8 * 1 = 5 h, ending 16:40 -> the curve rises from 0 at
        # 11:40 to 800 at 16:40. At 14:10 it is at 400; SoE 300 is 100 below; over the
        # 1/3 h left of the period: 100 * 3 / 0.8 = 375 kW
        ({}, utc(2024, 1, 10, 14, 10), 300, Signals(), (-375, None, -375)),
        ({}, utc(2024, 1, 10, 14, 10), 500, Signals(), None),  # above the curve
        ({}, utc(2024, 1, 10, 11), 100, Signals(), None),  # before the curve starts
        # 16:50: curve flat at 800; 40 kWh below, 1/6 h left: 40 * 6 / 0.8 = 300 kW
        ({}, utc(2024, 1, 10, 16, 50), 760, Signals(), (-300, None, -300)),
        # long: encourage to 1,000 with factor 2: 1000 / 200 / 0.8 * 2 = 12.5 h from 04:10;
        # at 14:10 (10 h in) the curve is at 800; SoE 300: 500 * 3 / 0.8 = 1,875 kW
        (
            {"encourage_to_soe": 1000, "encourage_charge_duration_factor": 2},
            utc(2024, 1, 10, 14, 10),
            300,
            live(period_at(utc(2024, 1, 10, 14, 10)), 3, -300),
            (-1875, None, -1875),
        ),
        # short: the encourage curve is not used, the force curve is
        (
            {"encourage_to_soe": 1000, "encourage_charge_duration_factor": 2},
            utc(2024, 1, 10, 14, 10),
            300,
            live(period_at(utc(2024, 1, 10, 14, 10)), 30, 300),
            (-375, None, -375),
        ),
        # after today's peak the next is tomorrow's, whose curve starts at 11:40 tomorrow
        ({}, utc(2024, 1, 10, 20), 100, Signals(), None),
    ],
)
def test_dynamic_peak_approach(
    params: dict[str, Any], at: Any, soe: float, signals: Signals, expected: Any
) -> None:
    site = make_site([{"mode": "dynamic_peak_approach", "params": {**APPROACH, **params}}])
    comp = propose(ctx_for(site, at, soe=soe, site_kw=0, signals=signals))
    if expected is None:
        assert comp is None
    else:
        expect(comp, *expected)


def test_dynamic_peak_approach_window_across_midnight_uses_next_days_peak() -> None:
    # peak 01:00-03:00; at 23:10 the next peak is tomorrow's: curve 800 / 200 / 0.8 = 5 h
    # ending 00:40 -> starts 19:40; at 23:10 (3.5 h in) it is at 560; SoE 460 is 100 below
    params = {**APPROACH, "peak_start": "01:00", "peak_end": "03:00"}
    site = make_site([{"mode": "dynamic_peak_approach", "params": params}])
    comp = propose(ctx_for(site, utc(2024, 1, 10, 23, 10), soe=460, site_kw=0))
    expect(comp, -375, None, -375)


def test_previous_value_for_a_period_value_mismatch_is_no_prediction() -> None:
    # price for this period, volume for the previous one: no prediction at all
    site = make_site([NIV], rates=RATES)
    signals = Signals(PeriodValue(SP, 20), PeriodValue(SP.previous(), 100))
    assert propose(ctx_for(site, AT, soe=600, site_kw=0, signals=signals)) is None


# --------------------------------------------------------------------------- optimise

OPTIMISE = {"mode": "optimise", "params": {"plan_max_age_min": 60}}


def _plan(made_at: Any, soe_end: float, kw: float = 0.0) -> Plan:
    return Plan(made_at=made_at, steps=(PlanStep(SP.start, SP.end, kw, soe_end, 12.5),))


@pytest.mark.parametrize(
    ("soe", "soe_end", "expected"),
    [
        # discharge 100 kWh in the 1/3 h left: 300 kW
        (600.0, 500.0, 300.0),
        # store 40 kWh: draw 40 / 0.8 = 50 kWh in 1/3 h: 150 kW charge
        (500.0, 540.0, -150.0),
        # 600 kWh to move in 1/3 h would be 1,800 kW: capped at the 400 kW discharge
        (900.0, 300.0, 400.0),
        (500.0, 500.0, 0.0),
    ],
)
def test_optimise_steers_to_the_plans_soe_by_the_period_end(
    soe: float, soe_end: float, expected: float
) -> None:
    site = make_site([OPTIMISE])
    signals = Signals(plan=_plan(utc(2024, 1, 10, 12, 0), soe_end))
    comp = propose(ctx_for(site, AT, soe=soe, site_kw=0, signals=signals))
    expect(comp, expected, None, None)
    assert comp is not None and "10 min old" in comp.note and "12.5 p/kWh" in comp.note


def test_optimise_proposes_nothing_without_a_current_plan() -> None:
    site = make_site([OPTIMISE])
    fresh = _plan(utc(2024, 1, 10, 12, 0), 500.0)
    stale = _plan(utc(2024, 1, 10, 11, 9), 500.0)  # 61 min old at 12:10
    later = Plan(made_at=AT, steps=(PlanStep(SP.end, SP.end + (SP.end - SP.start), 0, 1, 1),))
    assert propose(ctx_for(site, AT, soe=600, site_kw=0, signals=Signals())) is None
    assert propose(ctx_for(site, AT, soe=600, site_kw=0, signals=Signals(plan=stale))) is None
    assert propose(ctx_for(site, AT, soe=600, site_kw=0, signals=Signals(plan=later))) is None
    assert propose(ctx_for(site, AT, soe=600, site_kw=0, signals=Signals(plan=fresh))) is not None


def test_optimise_follows_the_planned_kw_in_the_last_minute() -> None:
    site = make_site([OPTIMISE])
    at = utc(2024, 1, 10, 12, 29, 30)  # 30 s left: the SoE gap would ask for any power
    signals = Signals(plan=_plan(utc(2024, 1, 10, 12, 0), 100.0, kw=-120.0))
    expect(propose(ctx_for(site, at, soe=600, site_kw=0, signals=signals)), -120.0, None, None)
