"""`flux backtest --plot`: the per-period traces it draws (the run's and the optimum's) agree
with the report's totals, the file is written in the format its name asks for, and a plot
that cannot be written is refused before the run, not after it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.backtest.commands import price_series
from reconciler.backtest.profiles import site_profiles
from reconciler.backtest.report import BacktestResult
from reconciler.backtest.runs import with_references
from reconciler.cli import cli
from reconciler.config.model import Site
from reconciler.control.periods import PERIOD
from tests.backtest.conftest import DEMO, ROOT

VARIANT = ROOT / "sites" / "variants" / "demo-optimise.yaml"


def flux(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["backtest", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_the_run_is_traced_at_every_period_end_and_the_trace_ends_at_its_totals(
    demo_day: BacktestResult,
) -> None:
    trace = demo_day.trace
    assert len(trace) == 48
    assert [p.at for p in trace] == [demo_day.start + PERIOD * (k + 1) for k in range(48)]
    assert trace[-1].soe_kwh == demo_day.total.soe_end_kwh
    assert trace[-1].value_gbp == pytest.approx(demo_day.total.battery_value_gbp, abs=1e-9)
    # Not a constant: the day's value and SoE move.
    assert len({round(p.soe_kwh) for p in trace}) > 10
    assert len({round(p.value_gbp, 2) for p in trace}) > 10


def test_the_optimum_is_traced_with_each_period_price_and_ends_at_its_value(
    demo_site: Site, demo_day: BacktestResult
) -> None:
    start, end = demo_day.start, demo_day.end
    series = price_series(("january-2024",))
    assert series is not None
    with_opt = with_references(demo_day, demo_site, series, site_profiles(start, end))
    ref = with_opt.reference_total
    assert ref is not None
    assert [t for t, _ in with_opt.prices] == [start + PERIOD * k for k in range(48)]
    assert [p for _, p in with_opt.prices] == [series.price(start + PERIOD * k) for k in range(48)]
    opt = with_opt.optimum_trace
    assert [p.at for p in opt] == [p.at for p in demo_day.trace]
    assert opt[-1].value_gbp == pytest.approx(ref.optimum_gbp, rel=1e-9)
    assert all(
        demo_site.soe_min_kwh - 1e-6 <= p.soe_kwh <= demo_site.soe_max_kwh + 1e-6 for p in opt
    )
    # Without the optimum: the prices still, for the price panel.
    only_prices = with_references(
        demo_day, demo_site, series, site_profiles(start, end), solve=False
    )
    assert only_prices.prices == with_opt.prices
    assert only_prices.optimum_trace == () and only_prices.reference_total is None


@pytest.mark.slow
def test_plot_beside_json_and_against_a_base(tmp_path: Path) -> None:
    png = tmp_path / "run.png"
    single = flux(str(DEMO), "--output", "json", "--plot", str(png))
    assert single.exit_code == 0, single.output
    json.loads(single.stdout)  # the report stays pure JSON: the note goes to stderr
    assert f"plot written to {png}" in single.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    svg = tmp_path / "pr.svg"
    compared = flux(str(VARIANT), "--base", str(DEMO), "--no-optimum", "--plot", str(svg))
    assert compared.exit_code == 0, compared.output
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text[:1000]
    # Both runs are drawn, and no optimum was asked for.
    assert text.count("base: ") == 1 and "perfect-foresight optimum" not in text

    unpriced = tmp_path / "none.svg"
    none = flux(str(DEMO), "--prices", "none", "--no-optimum", "--plot", str(unpriced))
    assert none.exit_code == 0, none.output
    assert "no imbalance prices in this run" in unpriced.read_text(encoding="utf-8")


def test_a_plot_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    no_folder = flux(str(DEMO), "--days", "31", "--plot", str(tmp_path / "nowhere" / "x.png"))
    assert no_folder.exit_code == 2
    assert "the folder" in no_folder.output and "nowhere" in no_folder.output
    assert "minutes over import limit" not in no_folder.output  # no run, no report

    kind = flux(str(DEMO), "--days", "31", "--plot", str(tmp_path / "run.txt"))
    assert kind.exit_code == 2
    assert "name it .png, .svg or .pdf" in kind.output
    assert not (tmp_path / "run.txt").exists()
    assert "minutes over import limit" not in kind.output


def test_without_matplotlib_the_plot_is_refused_with_the_install_line(tmp_path: Path) -> None:
    # matplotlib (a third-party library) hidden from the process: the project's own code
    # runs as installed.
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from reconciler.cli import main; sys.argv[0] = 'flux'; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "backtest", str(DEMO), "--days", "31",
         "--plot", str(tmp_path / "run.png")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "backtest plots need matplotlib: pip install 'flux-reconciler[plot]'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
