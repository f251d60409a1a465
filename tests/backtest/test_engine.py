"""The backtest engine: the agent's loop and real drivers on the simulated plant; energy,
SoE, hours, repeatability, and the loop's deadband, heartbeat and recording taking part."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from reconciler.agent.loop import TickResult
from reconciler.backtest.commands import signals_for
from reconciler.backtest.engine import MemorySink, run_backtest, run_now
from reconciler.backtest.report import IDLE, BacktestResult
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from reconciler.diff.tolerances import limit_tolerances
from tests.backtest.conftest import DAY, ROOT, demo_text, run_day, site_of, variant

NIV_CHASE_LABELS = ("weekday NIV chase", "weekend NIV chase")


def test_energy_balance_at_the_grid_meter(demo_day: BacktestResult) -> None:
    for m in [*(d.metrics for d in demo_day.days), demo_day.total]:
        # The battery did move both ways and the site both imported and exported, so the
        # balance is not a sum of zeros.
        assert m.battery_charged_kwh > 10 and m.battery_discharged_kwh > 10
        assert m.grid_import_kwh > 10 and m.grid_export_kwh > 10 and m.load_kwh > 100
        net_grid = m.grid_import_kwh - m.grid_export_kwh
        site_side = m.load_kwh - m.solar_kwh - m.battery_discharged_kwh + m.battery_charged_kwh
        assert net_grid == pytest.approx(site_side, abs=1e-6)


def test_battery_energy_matches_the_plants_soe(demo_site: Site, demo_day: BacktestResult) -> None:
    m = demo_day.total
    assert m.soe_start_kwh == pytest.approx(demo_site.energy_kwh(demo_site.simulation.initial_soe))
    stored = m.battery_charged_kwh * demo_site.limits.charge_efficiency - m.battery_discharged_kwh
    assert m.soe_end_kwh - m.soe_start_kwh == pytest.approx(stored, abs=1e-6)
    throughput = m.battery_charged_kwh + m.battery_discharged_kwh
    assert m.equivalent_full_cycles == pytest.approx(
        throughput / 2 / demo_site.devices.battery.nameplate_energy_kwh
    )


def test_soe_and_site_power_stay_within_the_limits(
    demo_site: Site, demo_day: BacktestResult
) -> None:
    tolerances = limit_tolerances(demo_site)
    power_tol, energy_tol = tolerances.power_kw, tolerances.energy_kwh
    for m in [*(d.metrics for d in demo_day.days), demo_day.total]:
        assert m.soe_min_kwh >= demo_site.soe_min_kwh - energy_tol
        assert m.soe_max_kwh <= demo_site.soe_max_kwh + energy_tol
        assert m.minutes_soe_outside_limits == 0
        assert m.peak_import_kw <= demo_site.limits.site_import_kw + power_tol
        assert m.minutes_over_import_limit == 0
        assert m.minutes_over_export_limit == 0
    # The day used the battery's range: the red band emptied it to its minimum.
    assert demo_day.total.soe_min_kwh < demo_site.soe_min_kwh + 1


def test_hours_per_mode_sum_to_the_day(demo_day: BacktestResult) -> None:
    (day,) = demo_day.days
    m = day.metrics
    assert day.day == DAY and day.settlement_periods == 48
    assert m.hours == pytest.approx(24.0)
    assert math.fsum(h for _, h in m.hours_by_winner) + m.safe_stop_hours == pytest.approx(24.0)
    # The top-priority red band (weekdays 17:00-19:00) always proposes: it wins all of it.
    assert m.winner_hours("red-band discharge") == pytest.approx(2.0)
    assert m.winner_hours("weekday NIV chase") > 0
    assert m.winner_hours("weekend NIV chase") == 0  # a Monday
    assert m.safe_stop_hours == 0  # the plant is always readable
    assert demo_day.ticks == 24 * 3600 / demo_day.tick_s


@pytest.mark.parametrize(
    ("day", "hours", "periods"), [(date(2024, 10, 27), 25.0, 50), (date(2024, 3, 31), 23.0, 46)]
)
def test_clock_change_days_have_their_real_length(
    demo_site: Site, day: date, hours: float, periods: int
) -> None:
    result = run_day(demo_site, day)
    (d,) = result.days
    assert d.day == day and d.settlement_periods == periods
    assert d.metrics.hours == pytest.approx(hours)
    winners = math.fsum(h for _, h in d.metrics.hours_by_winner)
    assert winners + d.metrics.safe_stop_hours == pytest.approx(hours)
    assert result.ticks == hours * 3600 / result.tick_s
    assert d.metrics.winner_hours("weekend NIV chase") > 0  # both are Sundays


def test_days_split_at_local_midnight() -> None:
    # 18:00 to 06:00 local with 3.5 s ticks: one tick straddles midnight, and each day still
    # gets exactly its 6 h.
    site = site_of(variant("  tick_s: 4\n", "  tick_s: 3.5\n"))
    start = local_midnight(site, DAY) + timedelta(hours=18)
    end = start + timedelta(hours=12)
    result = run_backtest(site, start, end, signals=signals_for("january-2024"))
    assert [d.day for d in result.days] == [DAY, DAY + timedelta(days=1)]
    for d in result.days:
        assert d.metrics.hours == pytest.approx(6.0, abs=1e-9)
        assert math.fsum(h for _, h in d.metrics.hours_by_winner) == pytest.approx(6.0, abs=1e-9)
    first, second = result.days
    assert second.metrics.soe_start_kwh == first.metrics.soe_end_kwh
    assert result.total.hours == pytest.approx(12.0)
    assert result.ticks == math.ceil(12 * 3600 / 3.5)


def test_same_run_twice_gives_identical_json(demo_site: Site, demo_day: BacktestResult) -> None:
    again = run_day(demo_site)
    assert json.dumps(again.as_json(), sort_keys=True) == json.dumps(
        demo_day.as_json(), sort_keys=True
    )


def test_noisy_plant_is_repeatable_by_its_seed() -> None:
    def noisy(seed: int) -> str:
        text = variant(
            "  initial_soe: 60%\n", f"  initial_soe: 60%\n  noise_pct: 5\n  seed: {seed}\n"
        )
        site = site_of(text)
        start = local_midnight(site, DAY) + timedelta(hours=6)
        result = run_backtest(
            site, start, start + timedelta(hours=4), signals=signals_for("january-2024")
        )
        return json.dumps(result.as_json(), sort_keys=True)

    first = noisy(7)
    assert noisy(7) == first
    assert noisy(8) != first  # the noise does reach the result: the equality above means something


def test_an_empty_schedule_moves_no_energy_through_the_battery(demo_site: Site) -> None:
    text = demo_text()
    cut = text[text.index("schedule:\n") : text.index("markets:\n")]
    idle = site_of(text.replace(cut, "schedule: []\n\n"))
    assert idle.schedule == []
    m = run_day(idle).total
    assert m.battery_charged_kwh == 0 and m.battery_discharged_kwh == 0
    assert m.equivalent_full_cycles == 0 and m.imbalance_value_gbp == 0
    assert m.soe_min_kwh == m.soe_max_kwh == m.soe_end_kwh == m.soe_start_kwh
    assert m.hours_by_winner == ((IDLE, pytest.approx(24.0)),)
    assert m.grid_import_kwh - m.grid_export_kwh == pytest.approx(m.load_kwh - m.solar_kwh)


def test_no_prices_stops_niv_chase_and_changes_the_imbalance_value(
    demo_site: Site, demo_day: BacktestResult
) -> None:
    # The demo's NIV chase has no default price.
    assert all(e.params.default_price is None for e in demo_site.schedule if e.mode == "niv_chase")
    without = run_day(demo_site, prices="none").total
    with_prices = demo_day.total
    assert with_prices.winner_hours("weekday NIV chase") > 1
    assert with_prices.priced_hours == pytest.approx(24.0)
    assert all(without.winner_hours(label) == 0 for label in NIV_CHASE_LABELS)
    assert without.priced_hours == 0 and without.imbalance_value_gbp == 0
    assert abs(with_prices.imbalance_value_gbp - without.imbalance_value_gbp) > 1.0
    assert without.battery_charged_kwh != pytest.approx(with_prices.battery_charged_kwh)


def test_no_prices_with_a_default_price_still_chases() -> None:
    text = variant(
        "      curve_shift_long: 6\n", "      curve_shift_long: 6\n      default_price: 4\n"
    )
    site = site_of(text)
    m = run_day(site, prices="none").total
    assert m.winner_hours("weekday NIV chase") > 1
    assert m.battery_charged_kwh > 10
    assert m.imbalance_value_gbp == 0  # no price to value it at


def test_progress_is_reported_up_to_one(
    demo_progress: list[float], demo_day: BacktestResult
) -> None:
    assert demo_day.ticks > 0
    assert demo_progress[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in demo_progress)
    assert demo_progress == sorted(demo_progress)
    assert len(demo_progress) < 1000  # now and then, not every tick


def test_the_loops_deadband_and_heartbeat_apply() -> None:
    # 1 s ticks with a 50 kW deadband: the loop skips small moves, but writes at least
    # every third of the 10 s heartbeat timeout, so the battery never stops on its own.
    text = variant("  tick_s: 4\n  deadband_kw: 1\n", "  tick_s: 1\n  deadband_kw: 50\n")
    site = site_of(text)
    ticks: list[TickResult] = []
    start = local_midnight(site, DAY) + timedelta(hours=8)
    result = run_backtest(
        site,
        start,
        start + timedelta(hours=2),
        signals=signals_for("january-2024"),
        on_tick=ticks.append,
    )
    assert len(ticks) == result.ticks == 7200
    written = [t for t in ticks if t.written_kw is not None]
    assert 0 < len(written) < len(ticks) / 2  # most ticks were inside the deadband
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(written)]
    timeout = site.devices.battery.heartbeat_timeout_s
    assert max(gaps) <= timeout / 3 + site.control.tick_s
    assert all(t.decision.safe_stop is False for t in ticks)
    assert result.total.battery_discharged_kwh + result.total.battery_charged_kwh > 10
    # What the loop read is what the simulated meters showed, through the real drivers.
    grid = site.grid_meter_name
    assert all(grid in t.observation.meters and not t.observation.errors for t in ticks)
    assert all(t.tracking_ok and t.envelope_ok for t in ticks[10:])


def test_the_loop_records_into_the_memory_sink(demo_site: Site) -> None:
    sink = MemorySink(keep_decisions=True)
    start = local_midnight(demo_site, DAY) + timedelta(hours=17)  # the red band begins
    result = run_backtest(
        demo_site,
        start,
        start + timedelta(hours=1),
        signals=signals_for("january-2024"),
        sink=sink,
    )
    minutes = 60
    assert sink.bess_rows == minutes  # one reading per record interval (60 s)
    assert sink.meter_rows == minutes * len(demo_site.devices.meters)
    # a decision every minute, and one more whenever the winner changes
    assert sink.decision_rows == len(sink.decisions) >= minutes
    assert {d.winner for d in sink.decisions} == {"red-band discharge"}
    assert result.ticks == 3600 / demo_site.control.tick_s


def test_bad_spans_are_refused(demo_site: Site) -> None:
    start = datetime(2024, 1, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        run_backtest(demo_site, start.replace(tzinfo=None), start, signals=None)
    with pytest.raises(ValueError, match="not after"):
        run_backtest(demo_site, start, start, signals=None)


def test_run_now_refuses_a_tick_that_waits() -> None:
    async def answers() -> int:
        return 7

    async def waits() -> int:
        await asyncio.sleep(0)
        return 7

    assert run_now(answers()) == 7
    with pytest.raises(RuntimeError, match="waited on I/O"):
        run_now(waits())


def test_an_optimise_entry_starts_from_the_prices_known_before_the_run() -> None:
    """A backtest of August 2016's first hour: seeded with July's fortnight (what an agent
    would have known), the loop follows a plan from its second tick; seeded with nothing (a file
    that starts that day), there is no plan until a day of prices has been seen."""
    from reconciler.backtest.prices import shipped_month

    site = site_of((ROOT / "sites" / "variants" / "demo-optimise.yaml").read_text("utf-8"))
    start = local_midnight(site, date(2016, 8, 1))
    august = shipped_month("2016-08")
    plans = []
    for seed in (august.known_before(start, 14), []):
        ticks: list[TickResult] = []
        run_backtest(
            site,
            start,
            start + timedelta(hours=1),
            signals=august.signals(wrap=True),
            seed=seed,
            on_tick=ticks.append,
        )
        plans.append([t.signals.plan for t in ticks])
    seeded, unseeded = plans
    # A plan needs one observation of the site: from the second tick on, every tick has one.
    assert len(seeded) > 800 and all(p is not None for p in seeded[1:])
    assert all(p is None for p in unseeded)
