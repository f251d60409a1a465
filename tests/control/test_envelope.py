"""The hard envelope: table cases with hand-computed cuts, then properties.

Test site (helpers.BASE): caps 400/400 kW (nameplate 500), soe 50..950 kWh, efficiency
0.8, import limit 200 kW, export limit 300 kW, tick 4 s.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.config.model import Site
from reconciler.control.envelope import apply_envelope
from tests.control.helpers import make_site

SITE = make_site()


def cut(site: Site = SITE, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "soe_kwh": 500.0,
        "site_power_kw": 0.0,
        "last_target_kw": 0.0,
        "elapsed_s": None,
    }
    args.update(kw)
    # A battery at rest at its last target unless the case says what it measured.
    args.setdefault("battery_power_kw", args["last_target_kw"])
    target = args.pop("target")
    return apply_envelope(site, target, **args)


@pytest.mark.parametrize(
    ("kw", "target", "bound_by", "predicted"),
    [
        ({"target": 100.0}, 100.0, (), -100.0),
        ({"target": 900.0, "site_power_kw": 500.0}, 400.0, ("battery_discharge_kw",), 100.0),
        ({"target": -900.0, "site_power_kw": -500.0}, -400.0, ("battery_charge_kw",), -100.0),
        # discharging 400 with the site at 0 would export 400 > 300: cut to 300
        ({"target": 400.0}, 300.0, ("site_export_kw",), -300.0),
        # charging 300 with the site importing 100 would import 400 > 200: cut to -100
        ({"target": -300.0, "site_power_kw": 100.0}, -100.0, ("site_import_kw",), 200.0),
        # the site load alone imports 350: discharge at least 150 even if idle was asked
        ({"target": 0.0, "site_power_kw": 350.0}, 150.0, ("site_import_kw",), 200.0),
        # prediction uses the measured power: site 100 with the battery at +50 ->
        # residual 150; charging 100 would import 250 > 200: cut to -50
        (
            {"target": -100.0, "site_power_kw": 100.0, "last_target_kw": 50.0},
            -50.0,
            ("site_import_kw",),
            200.0,
        ),
        # still ramping: commanded -201 kW but measured +93 kW (discharging). The homes
        # draw site 120 + 93 = 213 kW, so the battery must discharge at least 13 kW to keep
        # the import at 200; the last target (residual 120 - 201 = -81) would have allowed
        # a 281 kW charge, an import of 494 kW
        (
            {
                "target": -400.0,
                "site_power_kw": 120.0,
                "last_target_kw": -201.0,
                "battery_power_kw": 93.0,
            },
            13.0,
            ("site_import_kw",),
            200.0,
        ),
        # solar exports 450 with the battery at 0 (limit 300): charge 150 to absorb it,
        # even though the fold asked for a discharge
        (
            {"target": 100.0, "site_power_kw": -450.0},
            -150.0,
            ("site_export_kw", "solar_export_absorb"),
            -300.0,
        ),
        # ... but not past soe_max: a full battery cannot absorb anything; it stops
        # discharging (which would only add to the export) and stays at 0
        (
            {"target": 100.0, "site_power_kw": -450.0, "soe_kwh": 950.0},
            0.0,
            ("site_export_kw",),
            -450.0,
        ),
        # at soe_min no discharge even if the site imports over its limit
        ({"target": 300.0, "site_power_kw": 350.0, "soe_kwh": 50.0}, 0.0, ("soe_min",), 350.0),
        # 1 kWh above soe_min: one 4 s tick can take at most 1 / (4/3600) = 900 kW;
        # 0.1 kWh: 90 kW
        ({"target": 300.0, "site_power_kw": 300.0, "soe_kwh": 50.1}, 90.0, ("soe_min",), 210.0),
        # 0.1 kWh below soe_max: 0.1 / (4/3600) / 0.8 = 112.5 kW of charge
        ({"target": -300.0, "soe_kwh": 949.9}, -112.5, ("soe_max",), 112.5),
        # ramp 10 kW/s over 4 s: 40 kW from the last target
        (
            {"target": 300.0, "site_power_kw": 0.0, "last_target_kw": 0.0, "elapsed_s": 4.0},
            40.0,
            ("ramp",),
            -40.0,
        ),
        # residual 100 kW: charging 300 would import 400, so first cut to -100 by the
        # import limit; then 20 kW/2 s from the last +100 allows 80 at the least
        (
            {"target": -300.0, "site_power_kw": 0.0, "last_target_kw": 100.0, "elapsed_s": 2.0},
            80.0,
            ("site_import_kw", "ramp"),
            20.0,
        ),
    ],
)
def test_envelope_table(
    kw: dict[str, Any], target: float, bound_by: tuple[str, ...], predicted: float
) -> None:
    site = SITE
    if "elapsed_s" in kw:
        site = make_site(limits={"ramp_kw_per_s": 10})
    out = cut(site, **kw)
    assert out.target_kw == pytest.approx(target)
    assert out.bound_by == bound_by
    assert out.predicted_site_kw == pytest.approx(predicted)


def test_ramp_yields_to_the_import_limit() -> None:
    # residual 350 kW: the import limit needs at least +150; the ramp alone would allow
    # only 0 +/- 40. The site limit wins: 150.
    site = make_site(limits={"ramp_kw_per_s": 10})
    out = cut(site, target=0.0, site_power_kw=350.0, elapsed_s=4.0)
    assert out.target_kw == 150.0
    assert out.bound_by == ("site_import_kw",)


def test_nameplate_tighter_than_limit() -> None:
    site = make_site(limits={"battery_discharge_kw": 800})
    out = cut(site, target=900.0, site_power_kw=900.0)
    assert out.target_kw == 500.0
    assert out.bound_by == ("nameplate_power_kw",)


# --------------------------------------------------------------------------- properties

kw = st.floats(min_value=-2000, max_value=2000, allow_nan=False)


@st.composite
def sites(draw: st.DrawFn) -> Site:
    soe_min = draw(st.floats(0, 400))
    soe_max = draw(st.floats(soe_min + 1, 1000))
    limits: dict[str, Any] = {
        "battery_charge_kw": draw(st.floats(1, 800)),
        "battery_discharge_kw": draw(st.floats(1, 800)),
        "site_import_kw": draw(st.floats(1, 600)),
        "site_export_kw": draw(st.floats(1, 600)),
        "soe_min": soe_min,
        "soe_max": soe_max,
        "charge_efficiency": draw(st.floats(0.5, 1.0)),
        "ramp_kw_per_s": draw(st.one_of(st.none(), st.floats(0.5, 200))),
    }
    return make_site(limits=limits)


EPS = 1e-6


# Found by Hypothesis: a charge of 1e-40 kW at the import limit. The envelope cuts it to 0
# (exactly, it would breach the limit); the check must not round the breach away.
EDGE_SITE = make_site(
    limits={
        "battery_charge_kw": 1.0,
        "battery_discharge_kw": 1.0,
        "site_import_kw": 1.0,
        "site_export_kw": 1.0,
        "soe_min": 0.0,
        "soe_max": 1.0,
        "charge_efficiency": 1.0,
    }
)


@settings(max_examples=300, deadline=None)
@example(EDGE_SITE, -6.592735381748143e-40, 0.0, 0.0, 1.0, None, 1.0)
@given(
    sites(),
    kw,
    st.floats(0, 1000),
    kw,
    kw,
    st.one_of(st.none(), st.floats(0.1, 60)),
    kw,
)
def test_envelope_properties(
    site: Site,
    target: float,
    soe: float,
    site_kw: float,
    last: float,
    elapsed: float | None,
    measured: float,
) -> None:
    out = apply_envelope(
        site,
        target,
        soe_kwh=soe,
        site_power_kw=site_kw,
        battery_power_kw=measured,
        last_target_kw=last,
        elapsed_s=elapsed,
    )
    t = out.target_kw
    lim = site.limits
    charge_cap = min(lim.battery_charge_kw, site.devices.battery.nameplate_power_kw)
    discharge_cap = min(lim.battery_discharge_kw, site.devices.battery.nameplate_power_kw)
    tick_h = site.control.tick_s / 3600

    # always inside the battery's power limits and the SoE rules
    assert -charge_cap - EPS <= t <= discharge_cap + EPS
    if soe <= site.soe_min_kwh:
        assert t <= 0
    if soe >= site.soe_max_kwh:
        assert t >= 0
    if t > 0:
        assert t * tick_h <= soe - site.soe_min_kwh + EPS
    if t < 0:
        assert -t * tick_h * lim.charge_efficiency <= site.soe_max_kwh - soe + EPS

    # the site limits hold whenever the battery (within its limits and SoE) could hold them
    most_dis = (
        0.0 if soe <= site.soe_min_kwh else min(discharge_cap, (soe - site.soe_min_kwh) / tick_h)
    )
    most_chg = (
        0.0
        if soe >= site.soe_max_kwh
        else min(charge_cap, (site.soe_max_kwh - soe) / tick_h / lim.charge_efficiency)
    )
    residual = site_kw + measured
    predicted = residual - t
    assert predicted == pytest.approx(out.predicted_site_kw)
    if residual - most_dis <= lim.site_import_kw:
        assert predicted <= lim.site_import_kw + EPS
    if residual + most_chg >= -lim.site_export_kw:
        assert predicted >= -lim.site_export_kw - EPS

    # a target already inside every limit passes unchanged (ramp aside). The site limits
    # as bounds on the target: ``residual - target`` would round a breach of 1e-40 kW away.
    inside = (
        -most_chg <= target <= most_dis
        and residual - lim.site_import_kw <= target <= residual + lim.site_export_kw
    )
    if inside and (lim.ramp_kw_per_s is None or elapsed is None):
        assert t == target or (t == 0.0 and target == 0.0)
        assert out.bound_by == ()
