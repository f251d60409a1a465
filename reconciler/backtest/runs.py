"""The simulated runs of `flux backtest`: one site file on the simulated site with the
references beside it, run in this process or, with ``--base``, the two runs side by side
in worker processes (they share nothing: the same days, two site files), which halves the
wait on a machine of two or more cores and gives the same figures to the last digit.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reconciler.agent.ports import SignalSource
from reconciler.backtest import optimum
from reconciler.backtest.engine import planning_history_days, run_backtest
from reconciler.backtest.prices import PriceSeries
from reconciler.backtest.profiles import SiteProfiles
from reconciler.backtest.report import BacktestResult, Reference
from reconciler.config.model import Site
from reconciler.sim.plant import RepeatedEvent

#: How often (s) the progress of runs in worker processes is read for the bars.
PROGRESS_POLL_S = 0.25


def _seed(
    series: PriceSeries | None, site: Site, start: datetime
) -> list[tuple[datetime, float]] | None:
    """What an optimise entry has learnt by ``start`` when the run plays the series' own
    dates: its real past only (the month before a shipped month; nothing before a file's
    first day). None for a series wrapped onto other dates (the engine's default)."""
    if series is None or not series.first <= start < series.end:
        return None
    return series.known_before(start, planning_history_days(site))


def with_references(
    result: BacktestResult,
    site: Site,
    prices: PriceSeries | None,
    profiles: SiteProfiles,
    *,
    solve: bool = True,
) -> BacktestResult:
    """``result`` with the imbalance price of each settlement period and, with ``solve``,
    the perfect-foresight and same-day optima of its days beside it."""
    start, end = result.start, result.end
    x = optimum.inputs_for(site, start, end, prices=prices, profiles=profiles, wrap=True)
    result = replace(result, prices=tuple(zip(x.starts, x.price, strict=True)))
    if not solve:
        return result
    refs = optimum.references(x, optimum.Plant.of(site), result.days[0].metrics.soe_start_kwh)
    by_day = [refs.day(d.day) for d in result.days]
    return replace(
        result,
        optimum_trace=optimum.trace(refs.optimum),
        references=tuple(
            Reference(r.optimum_gbp, r.optimum_cycles, r.same_day_gbp, r.same_day_cycles)
            for r in by_day
        ),
        reference_total=Reference(
            refs.optimum_gbp, refs.optimum.cycles(), refs.same_day_gbp, refs.same_day.cycles()
        ),
    )


@dataclass(frozen=True)
class SimulatedRun:
    """One run of ``site`` on the simulated site from ``start`` to ``end`` (aware): what a
    worker process needs, all of it picklable. ``series`` gives the references their
    prices; ``solve``: the optima beside the result; ``periods``: each period's price
    beside it even without them (for a plot)."""

    site: Site
    start: datetime
    end: datetime
    signals: SignalSource | None
    profiles: SiteProfiles
    events: tuple[RepeatedEvent, ...]
    series: PriceSeries | None
    solve: bool
    periods: bool = False


def simulate(run: SimulatedRun, progress: Callable[[float], None] | None = None) -> BacktestResult:
    """``run`` in this process, with the references it asks for."""
    result = run_backtest(
        run.site,
        run.start,
        run.end,
        signals=run.signals,
        progress=progress,
        load=run.profiles.load_per_home,
        solar=run.profiles.solar_per_kwp,
        frequency_events=run.events,
        seed=_seed(run.series, run.site, run.start),
    )
    if not (run.solve or run.periods):
        return result
    return with_references(result, run.site, run.series, run.profiles, solve=run.solve)


#: In a worker process: the fraction done of each run, shared with the parent.
_progress: Any = None


def _worker_init(progress: Any) -> None:
    global _progress
    _progress = progress
    # As in the parent (commands.backtest): safe stops are in the report, not on stderr.
    logging.getLogger("flux.agent").setLevel(logging.CRITICAL)


def _simulate_in_worker(index: int, run: SimulatedRun) -> BacktestResult:
    def progress(fraction: float) -> None:
        _progress[index] = fraction

    return simulate(run, progress)


def simulate_all(
    runs: Sequence[SimulatedRun],
    progress: Sequence[Callable[[float], None]],
    workers: int,
) -> list[BacktestResult]:
    """Each of ``runs`` (``progress[i]`` called with run i's fraction done), in this
    process when ``workers`` is 1 or there is one run, else in up to ``workers`` worker
    processes side by side; the results in the order of ``runs``."""
    if workers <= 1 or len(runs) <= 1:
        return [simulate(run, bar) for run, bar in zip(runs, progress, strict=True)]
    spawn = multiprocessing.get_context("spawn")  # no fork under rich's refresh thread
    done = spawn.Array("d", len(runs), lock=False)
    with ProcessPoolExecutor(
        min(workers, len(runs)), mp_context=spawn, initializer=_worker_init, initargs=(done,)
    ) as pool:
        futures = [pool.submit(_simulate_in_worker, i, run) for i, run in enumerate(runs)]
        while not all(f.done() for f in futures):
            wait(futures, timeout=PROGRESS_POLL_S)
            for i, bar in enumerate(progress):
                bar(done[i])
        return [f.result() for f in futures]
