"""The site limits hold at every physics step, not only at ticks.

The control core decides on the simulated plant tick by tick while the battery ramps at a
rate of its own, prices swing it between full charge and full discharge, and the homes'
load steps at arbitrary instants. Between ticks the plant advances in its own sub-steps;
at each of them the site's import and export, less the load change since the reading the
decision was made on (which no controller can know), must stay inside the limits, or at
least be no worse than the battery holding its power would have left them.

This is the case a backtest found: about 9 s after a half-hour boundary, a battery still
ramping down from discharge was charged as if it had already reached its last command.
"""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.model import Site
from reconciler.control.core import decide
from reconciler.control.periods import period_at
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
)
from reconciler.sim.curves import HalfHourly
from reconciler.sim.plant import MAX_STEP_S, Plant
from tests.control.helpers import BASE, live, utc

IMPORT_KW, EXPORT_KW = 200.0, 300.0
TOLERANCE_KW = 1e-6
START = utc(2024, 1, 10, 12, 15)  # mid-period: the live price estimate is in use


def _site(ramp_kw_per_s: float, tick_s: float) -> Site:
    data: dict[str, Any] = copy.deepcopy(BASE)
    data["site"]["homes"] = 1  # the plant scales the load profile by the homes
    battery = data["devices"]["battery"]
    # A store so large that the SoE limits never bind: only the site limits are tested.
    battery.update(
        nameplate_energy_kwh=100_000,
        ramp_up_kw_per_s=ramp_kw_per_s,
        ramp_down_kw_per_s=ramp_kw_per_s,
        heartbeat_timeout_s=600,
    )
    data["limits"].update(
        soe_min=1_000, soe_max=99_000, site_import_kw=IMPORT_KW, site_export_kw=EXPORT_KW
    )
    data["control"] = {"tick_s": tick_s}
    data["simulation"] = {"noise_pct": 0, "initial_soe": 50_000}
    # Cheap: charge to the top; dear: discharge to the bottom. Each swing is full power.
    data["schedule"] = [
        {
            "mode": "niv_chase",
            "params": {
                "charge_curve": [
                    {"price": -math.inf, "soe": 99_000},
                    {"price": 10, "soe": 99_000},
                    {"price": 11, "soe": 1_000},
                ],
                "discharge_curve": [
                    {"price": 14, "soe": 99_000},
                    {"price": 15, "soe": 1_000},
                    {"price": math.inf, "soe": 1_000},
                ],
            },
        }
    ]
    return Site.model_validate(data)


def _flat(kw: float) -> HalfHourly:
    return HalfHourly(START, (kw,))


def _observe(site: Site, plant: Plant) -> Observation:
    """What the registers would say now: the battery's power and SoE, the grid meter."""
    at = plant.at
    return Observation(
        battery=BatteryReading(at, plant.soe_kwh, plant.battery_kw),
        meters={site.grid_meter_name: MeterReading(at, plant.grid_kw)},
    )


@settings(max_examples=60, deadline=None)
@given(
    ramp=st.floats(5.0, 600.0),
    tick_s=st.sampled_from([1.0, 2.0, 4.0, 8.0]),
    prices=st.lists(st.sampled_from([0.0, 12.0, 30.0]), min_size=8, max_size=24),
    loads=st.lists(
        st.tuples(st.floats(0.0, 30.0), st.floats(-200.0, 500.0)), min_size=1, max_size=6
    ),
)
def test_site_limits_hold_at_every_physics_step(
    ramp: float, tick_s: float, prices: list[float], loads: list[tuple[float, float]]
) -> None:
    site = _site(ramp, tick_s)
    plant = Plant.for_site(site, START, load=_flat(loads[0][1]), solar=_flat(0.0))
    battery = plant.battery
    battery.real_power_mode = 1  # direct mode, as the driver leaves it
    battery.heartbeat_timeout_s = 600
    battery.last_heartbeat_change = START
    battery.ramp_up_kw_per_s = battery.ramp_down_kw_per_s = ramp
    # Load steps at instants of their own, not aligned to ticks or physics steps.
    steps = sorted((START + timedelta(seconds=s * tick_s), kw) for s, kw in loads[1:])

    state = ControlState()
    at = START
    for price in prices:
        obs = _observe(site, plant)
        if state.last_at is None:
            state = ControlState(last_target_kw=plant.battery_kw)
        signals = live(period_at(at), price, 0.0)
        decision = decide(site, at, obs, signals, state)
        plant.write("power_command", decision.target_kw)
        state = ControlState(last_target_kw=decision.target_kw, last_at=at)

        residual_at_decision = plant.load_kw - plant.solar_kw
        held_kw = plant.battery_kw  # where the battery was when the decision was made
        worst_import = max(IMPORT_KW, residual_at_decision - held_kw)
        worst_export = max(EXPORT_KW, held_kw - residual_at_decision)
        end = at + timedelta(seconds=tick_s)
        t = at
        while t < end:
            t = min(t + timedelta(seconds=MAX_STEP_S / 4), end)
            while steps and steps[0][0] <= t:
                plant.load = _flat(steps.pop(0)[1])
            plant.advance_to(t)
            # The battery's part of the site power: the load change since the reading is
            # taken out, since no decision could have known it.
            unforeseen = (plant.load_kw - plant.solar_kw) - residual_at_decision
            site_kw = plant.grid_kw - unforeseen
            assert site_kw <= worst_import + TOLERANCE_KW, (
                f"import {site_kw:.1f} kW at {t.time()} (limit {IMPORT_KW:g}); "
                f"decision: {decision.reason}"
            )
            assert -site_kw <= worst_export + TOLERANCE_KW, (
                f"export {-site_kw:.1f} kW at {t.time()} (limit {EXPORT_KW:g}); "
                f"decision: {decision.reason}"
            )
        at = end
