"""Real runs of the backtest on sites/demo.yaml (the project's plant and control core),
shared between tests because each simulated day takes a few seconds (the demo's day once
a run, for every xdist worker)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from reconciler.backtest.commands import signals_for
from reconciler.backtest.engine import run_backtest
from reconciler.backtest.report import BacktestResult
from reconciler.config.loader import check_site_text, load_site
from reconciler.config.model import Site
from reconciler.control.schedule import local_midnight
from tests.shared import once_a_run, run_folder

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sites" / "demo.yaml"
#: A Monday inside the shipped January 2024 prices: NIV chase, peak approach and the red
#: band all take part.
DAY = date(2024, 1, 15)


def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


def variant(old: str, new: str, *, text: str | None = None) -> str:
    """The demo's YAML with one exact edit (failing loudly if ``old`` is not there once)."""
    source = demo_text() if text is None else text
    assert source.count(old) == 1, f"{old!r} is not in the demo site exactly once"
    return source.replace(old, new)


def site_of(text: str, name: str = "variant.yaml") -> Site:
    site, problems = check_site_text(text, name)
    errors = [p for p in problems if p.severity == "error"]
    assert site is not None and not errors, errors
    return site


def run_day(site: Site, day: date = DAY, prices: str = "january-2024") -> BacktestResult:
    return run_backtest(
        site,
        local_midnight(site, day),
        local_midnight(site, day + timedelta(days=1)),
        signals=signals_for(prices),
    )


@pytest.fixture(scope="session")
def demo_site() -> Site:
    return load_site(DEMO)


@pytest.fixture(scope="session")
def demo_run(
    demo_site: Site, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BacktestResult, list[float]]:
    """One local day of the demo with January 2024 prices, and the progress it reported
    (once a run, for every xdist worker)."""

    def make() -> tuple[BacktestResult, list[float]]:
        progress: list[float] = []
        result = run_backtest(
            demo_site,
            local_midnight(demo_site, DAY),
            local_midnight(demo_site, DAY + timedelta(days=1)),
            signals=signals_for("january-2024"),
            progress=progress.append,
        )
        return result, progress

    return once_a_run(run_folder(tmp_path_factory.getbasetemp()), "demo-day", make)


@pytest.fixture(scope="session")
def demo_day(demo_run: tuple[BacktestResult, list[float]]) -> BacktestResult:
    """One local day of the demo with January 2024 prices."""
    return demo_run[0]


@pytest.fixture(scope="session")
def demo_progress(demo_run: tuple[BacktestResult, list[float]]) -> list[float]:
    """The progress ``demo_day`` reported, in order."""
    return demo_run[1]
