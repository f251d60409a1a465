"""The frequency_response mode: the curve at its knees and limits, staleness, the SoE
band, and the envelope over it. Hand-computed on the test site of helpers.BASE (1,000 kWh,
400 kW caps, efficiency 0.8, soe 50..950 kWh, import 200 kW, export 300 kW)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconciler.control.core import decide
from reconciler.control.types import (
    BatteryReading,
    ControlState,
    MeterReading,
    Observation,
    Signals,
)
from tests.control.helpers import make_site, utc

AT = utc(2024, 1, 10, 12, 10)
FR = {"mode": "frequency_response", "params": {"low_kw": 200, "high_kw": 100}}


def _decide(
    hz: float,
    *,
    soe: float = 500.0,
    site_kw: float = 0.0,
    frozen_s: float = 0.0,
    params: dict[str, float] | None = None,
) -> tuple[float, str]:
    entry = {**FR, "params": {**FR["params"], **(params or {})}}
    site = make_site([entry])
    obs = Observation(
        battery=BatteryReading(AT, soe, 0.0),
        meters={"grid": MeterReading(AT, site_kw, frequency_hz=hz)},
        frequency_changed_at=AT - timedelta(seconds=frozen_s),
    )
    d = decide(site, AT, obs, Signals(), ControlState(last_at=AT - timedelta(seconds=4)))
    return d.target_kw, d.reason


@pytest.mark.parametrize(
    ("hz", "expected"),
    [
        (50.0, 0.0),
        (49.99, 0.0),  # inside the 0.015 Hz deadband
        (49.985, 0.0),  # at the knee: 0%
        (49.8, 10.0),  # 5% of 200 kW
        (49.65, 105.0),  # halfway 0.2 -> 0.5 Hz: 52.5% of 200 kW
        (49.5, 200.0),  # 100%
        (49.2, 200.0),  # flat beyond the last point
        (50.2, -5.0),  # over-frequency: 5% of 100 kW, charging
        (50.5, -100.0),
    ],
)
def test_the_response_follows_the_curve(hz: float, expected: float) -> None:
    target, reason = _decide(hz)
    assert target == pytest.approx(expected, abs=1e-6)
    assert f"{hz:.3f} Hz" in reason


def test_a_stale_or_frozen_frequency_gives_no_response() -> None:
    target, reason = _decide(49.5, frozen_s=1.5)  # unchanged for 1.5 s > 1 s
    assert target == 0.0 and "frequency stale (1.5 s): no response" in reason
    assert _decide(49.5, frozen_s=0.5)[0] == pytest.approx(200.0)


def test_the_soe_is_steered_back_into_the_band_between_events() -> None:
    # Band: 50 + 200 x 0.25 h = 100 kWh to 950 - 100 x 0.25 x 0.8 = 930 kWh; the
    # steering aims 20 kWh (2% of 1,000 kWh) inside it.
    target, reason = _decide(50.0, soe=90.0)
    # 30 kWh to store in 0.25 h at efficiency 0.8: 150 kW, within the 300 kW left over
    assert target == pytest.approx(-150.0) and "SoE band 100-930 kWh" in reason
    # 60 kWh would be 300 kW: the site's 200 kW import limit cuts it
    assert _decide(50.0, soe=60.0)[0] == pytest.approx(-200.0)
    target, _ = _decide(50.0, soe=932.0)
    assert target == pytest.approx(88.0)  # 22 kWh in 0.25 h
    # an event while out of the band: the response and the steering add
    assert _decide(49.5, soe=932.0)[0] == pytest.approx(200.0 + 88.0)
    # inside the band, no steering
    assert _decide(50.0, soe=101.0)[0] == 0.0


def test_the_steering_reaches_the_band_past_the_deadband() -> None:
    """Ticks of 4 s with the loop's 1 kW deadband (a setpoint that moves less is not
    rewritten): from 11 kWh under the band the SoE is inside it within one duration."""
    soe, written, seconds = 89.0, 0.0, 0
    while soe < 100.0:
        target, _ = _decide(50.0, soe=soe)
        if abs(target - written) >= 1.0:
            written = target
        soe += -written * 0.8 * 4 / 3600  # charging stores at efficiency 0.8
        seconds += 4
        assert seconds < 15 * 60, soe
    assert soe >= 100.0


def test_the_envelope_cuts_a_response_and_says_so() -> None:
    # 400 kW contracted on a 400 kW battery with an export limit of 300 kW and no load:
    # the full response would export 400 kW.
    target, reason = _decide(49.4, params={"low_kw": 400})
    assert target == pytest.approx(300.0)
    assert "export" in reason
