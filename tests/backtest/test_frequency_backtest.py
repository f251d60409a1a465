"""A backtest with a frequency_response entry shows the SoE band the contract needs and
the time outside it (per day, in total, in JSON and in the tables); without one it shows
neither."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from reconciler.backtest.commands import comparison_rows, single_rows
from reconciler.backtest.engine import MemorySink, run_backtest
from reconciler.backtest.report import BacktestResult, MetricsBuilder, combine, compare
from reconciler.cli import cli
from reconciler.control.modes.frequency_response import band_kwh
from reconciler.control.types import FrequencyRecord
from reconciler.sim.plant import RepeatedEvent
from tests.agent.test_frequency import FR_TEXT
from tests.backtest.conftest import site_of

T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)
#: Starts at 10% (128 kWh), below the band's 139 kWh (soe_min 64 + 300 kW x 15 min): the
#: mode charges back into it.
LOW_START = FR_TEXT.replace("initial_soe: 60%", "initial_soe: 10%")


def _builder() -> MetricsBuilder:
    return MetricsBuilder(
        soe_start_kwh=150.0,
        nameplate_kwh=1000.0,
        import_limit_kw=100.0,
        export_limit_kw=100.0,
        soe_min_kwh=0.0,
        soe_max_kwh=1000.0,
    )


def _feed(b: MetricsBuilder, seconds: int, soe: float, band: tuple[float, float] | None) -> None:
    for k in range(seconds):
        b.add(
            1.0,
            T0 + timedelta(seconds=k + 1),
            grid_kw=0.0,
            load_kw=0.0,
            solar_kw=0.0,
            battery_kw=0.0,
            soe_kwh=soe,
            import_rate=0.0,
            export_rate=0.0,
            price=None,
            winner="fr",
            safe_stop=False,
            frequency_band=band,
        )


def test_time_outside_the_band_counts_only_while_an_entry_is_active() -> None:
    a, b = _builder(), _builder()
    _feed(a, 60, 150.0, (100.0, 200.0))  # inside
    _feed(a, 30, 250.0, (100.0, 200.0))  # above the band
    _feed(a, 45, 250.0, None)  # no entry active: no band to be outside of
    _feed(b, 12, 90.0, (100.0, 200.0))  # below
    day_a, day_b = a.build(), b.build()
    assert day_a.frequency_response_hours == pytest.approx(90 / 3600)
    assert day_a.minutes_outside_frequency_band == pytest.approx(0.5)
    total = combine([day_a, day_b], 1000.0)
    assert total.frequency_response_hours == pytest.approx(102 / 3600)
    assert total.minutes_outside_frequency_band == pytest.approx(0.7)
    doc = total.as_json()
    assert doc["minutes_outside_frequency_band"] == 0.7
    assert doc["frequency_response_hours"] == round(102 / 3600, 6)


#: The SoE (kWh) each 4 s tick of fr_run saw.
TICK_SOE: list[float] = []


@pytest.fixture(scope="module")
def fr_run() -> BacktestResult:
    site = site_of(LOW_START)
    TICK_SOE.clear()
    return run_backtest(
        site,
        T0,
        T0 + timedelta(hours=3),
        signals=None,
        on_tick=lambda r: TICK_SOE.append(r.decision.soe_kwh or 0.0),
    )


def test_the_band_and_the_time_outside_it_are_in_the_result(fr_run: BacktestResult) -> None:
    site = site_of(LOW_START)
    low, high = band_kwh(site, site.schedule[0].params)  # type: ignore[union-attr]
    assert low == pytest.approx(64 + 300 * 0.25)
    doc = fr_run.as_json()
    fr = doc["frequency_response"]
    (band,) = fr["bands"]
    assert band == {
        "entry": "dynamic containment",
        "band_low_kwh": pytest.approx(low, abs=1e-6),
        "band_high_kwh": pytest.approx(high, abs=1e-6),
        "low_kw": 300.0,
        "high_kw": 200.0,
        "duration_min": 15.0,
    }
    # The entry has no windows: active all three hours. It started 11 kWh below the band
    # and charged back towards a margin inside it: outside (beyond the 0.63 kWh
    # tolerance) for as long as the ticks saw it so.
    assert fr["hours"] == pytest.approx(3.0)
    tol = fr_run.breach_tolerance_kwh
    ticks_outside = sum(1 for soe in TICK_SOE if not low - tol <= soe <= high + tol)
    # 11 kWh short: back inside within the 15-minute duration (not creeping up to the
    # edge in ever smaller steps).
    assert 1 < fr["minutes_outside_band"] < 15
    assert fr["minutes_outside_band"] == pytest.approx(ticks_outside * 4 / 60, abs=0.5)
    assert doc["total"]["minutes_outside_frequency_band"] == fr["minutes_outside_band"]
    assert doc["days"][0]["frequency_response_hours"] == pytest.approx(3.0)
    _, rows = single_rows(fr_run)
    titles = {r[0]: r[1:] for r in rows}
    assert titles["SoE band kWh: dynamic containment"] == [f"{low:,.0f}-{high:,.0f}"]
    assert titles["hours of frequency response"] == ["3.00"]
    assert float(titles["minutes SoE outside the frequency response band"][0]) == pytest.approx(
        fr["minutes_outside_band"], abs=0.05
    )


def test_a_schedule_without_frequency_response_shows_no_band() -> None:
    site = site_of(FR_TEXT.replace("    mode: frequency_response\n", "    mode: idle\n").replace(
        "    params: {low_kw: 300, high_kw: 200, fast_interval_s: 0.2}\n", ""
    ))  # fmt: skip
    result = run_backtest(site, T0, T0 + timedelta(hours=1), signals=None)
    doc = result.as_json()
    assert doc["frequency_response"] is None
    assert doc["total"]["frequency_response_hours"] == 0.0
    assert not any("frequency" in r[0] or "SoE band" in r[0] for r in single_rows(result)[1])


def test_a_comparison_shows_both_bands_and_the_difference(fr_run: BacktestResult) -> None:
    wider = site_of(LOW_START.replace("low_kw: 300", "low_kw: 400"))
    other = run_backtest(wider, T0, T0 + timedelta(hours=3), signals=None)
    cmp = compare(fr_run, other)
    rows = {r[0]: r[1:] for r in comparison_rows(cmp)[1]}
    base_low = 64 + 300 * 0.25
    this_low = 64 + 400 * 0.25
    band = rows["SoE band kWh: dynamic containment"]
    assert band[0].startswith(f"{base_low:,.0f}-") and band[1].startswith(f"{this_low:,.0f}-")
    outside = rows["minutes SoE outside the frequency response band"]
    assert float(outside[1]) > float(outside[0])  # starting further below the wider band
    assert "outside the frequency response band" in cmp.as_json()["summary"]


class _Keep(MemorySink):
    """A backtest sink that keeps the frequency records, not just their count."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[FrequencyRecord] = []

    def add_frequency_many(
        self, site_id: str, device: str, seconds: Iterable[FrequencyRecord]
    ) -> int:
        kept = list(seconds)
        self.records += kept
        return super().add_frequency_many(site_id, device, kept)


def test_grid_events_are_answered_between_ticks() -> None:
    """A step to 49.5 Hz every 302 s (the first between two 4 s ticks, the second on
    one), held 60 s: the fast path (every 0.2 s) delivers the ~300 kW due within a second
    of it, not at the next tick."""
    sink = _Keep()
    run_backtest(
        site_of(FR_TEXT),
        T0,
        T0 + timedelta(minutes=12),
        signals=None,
        sink=sink,
        frequency_events=(RepeatedEvent.parse("step:302:60"),),
    )
    for start in (T0 + timedelta(seconds=302), T0 + timedelta(seconds=604)):
        held = [r for r in sink.records if start <= r.at < start + timedelta(seconds=60)]
        assert len(held) == 60
        # 49.5 Hz with a tenth of the wander on it: close to the 300 kW contracted.
        assert all(r.frequency_hz < 49.6 and (r.expected_kw or 0.0) > 250.0 for r in held)
        first = next(r.at for r in held if r.within)
        # The second it began shows the power before the write; the next one delivers.
        assert first <= start + timedelta(seconds=1), first
        assert all(r.within for r in held if r.at > first)


def test_an_unknown_frequency_event_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["backtest", "demo", "--frequency-events", "blip:60"])
    assert result.exit_code == 2
    assert "write KIND:EVERY_S[:HOLD_S]" in result.output
