"""The reconcile loop as a backtest runs it: the real drivers on the simulator's register
banks in-process, reads in turn, each tick driven with no event loop. The guard's
stale-reading rules apply exactly as over Modbus TCP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler.agent.loop import ReconcileLoop, TickResult
from reconciler.backtest.engine import run_now
from reconciler.clock import ManualClock
from reconciler.config import Site, load_site
from reconciler.sim.simulator import SiteSimulator
from tests.rigs import in_process

ROOT = Path(__file__).resolve().parents[2]
NOON = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def rig() -> tuple[SiteSimulator, ReconcileLoop, Site]:
    site = load_site(ROOT / "sites" / "demo.yaml")
    sim, loop = in_process(site, ManualClock(NOON))
    return sim, loop, site


def tick(sim: SiteSimulator, loop: ReconcileLoop, site: Site) -> TickResult:
    result = run_now(loop.tick())
    assert isinstance(sim.clock, ManualClock)
    sim.clock.advance(site.control.tick_s)
    sim.catch_up()
    return result


def test_a_device_error_is_named_and_the_others_still_read() -> None:
    sim, loop, site = rig()
    first = tick(sim, loop, site)
    assert not first.observation.errors and first.written_kw is not None
    sim.faults["solar"].exception_code = 4
    failed = tick(sim, loop, site)
    assert set(failed.observation.errors) == {"solar"}
    assert "Modbus exception 4" in failed.observation.errors["solar"]
    # The battery and the grid meter were read after the failing device all the same.
    assert failed.observation.battery is not None
    assert failed.observation.battery.at == failed.at
    assert failed.observation.meters[site.grid_meter_name].at == failed.at
    sim.faults["solar"].exception_code = None
    assert not tick(sim, loop, site).observation.errors


def test_a_failing_or_frozen_grid_meter_goes_safe() -> None:
    sim, loop, site = rig()
    for _ in range(5):
        assert not tick(sim, loop, site).decision.safe_stop
    sim.faults["site"].exception_code = 4
    limit = site.limits.max_reading_age_s
    results = [tick(sim, loop, site) for _ in range(int(limit // site.control.tick_s) + 2)]
    assert results[-1].decision.safe_stop and results[-1].decision.target_kw == 0.0
    sim.faults["site"].exception_code = None
    assert not tick(sim, loop, site).decision.safe_stop
    sim.faults["site"].frozen = True
    frozen = [tick(sim, loop, site) for _ in range(int(limit // site.control.tick_s) + 2)]
    assert not frozen[0].decision.safe_stop  # one unchanged reading proves nothing
    assert frozen[-1].decision.safe_stop and "frozen" in frozen[-1].decision.reason
