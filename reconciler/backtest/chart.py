"""A backtest drawn (`flux backtest --plot FILE`): per settlement period, the imbalance
price; the SoE of the run, of its base and of the perfect-foresight optimum; and the
battery's value so far of each (£ over an idle battery). Where the run's value line
falls away from the optimum's is where a reviewer looks: the SoE panel above it shows
what the optimum did differently then (held energy for a dear evening, say)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.backtest.report import BacktestResult, TracePoint
from reconciler.control.schedule import zone
from reconciler.plots import pyplot

WHAT = "backtest plots"
INSTEAD = "or leave --plot out"


def _line(
    start: datetime, first: float, points: tuple[TracePoint, ...], soe: bool
) -> tuple[list[datetime], list[float]]:
    """x and y of a trace from the run's start (SoE ``first`` kWh there, value 0 £)."""
    xs = [start, *(p.at for p in points)]
    ys = [first, *(p.soe_kwh if soe else p.value_gbp for p in points)]
    return xs, ys


def _captured(result: BacktestResult) -> str:
    pct = result.captured_pct()
    ref = result.reference_total
    if pct is None or ref is None:
        return f"£{result.total.battery_value_gbp:,.0f}"
    return f"£{result.total.battery_value_gbp:,.0f}, {pct:.1f}% of the optimum"


def draw_backtest(
    path: Path,
    result: BacktestResult,
    label: str,
    base: BacktestResult | None = None,
    base_label: str | None = None,
) -> None:
    """Draw ``result`` (and ``base`` beside it, the same days) to ``path``; the format
    follows its extension."""
    plt = pyplot(WHAT, INSTEAD)
    import matplotlib.dates

    mdates: Any = matplotlib.dates  # its locators are untyped

    tz = zone(result.timezone)
    fig, (price_ax, soe_ax, value_ax) = plt.subplots(
        3, 1, sharex=True, figsize=(12, 8.5), height_ratios=[1.0, 1.3, 1.1]
    )
    start = result.start
    soe_start = result.days[0].metrics.soe_start_kwh

    if not any(p is not None for _, p in result.prices):
        price_ax.text(
            0.5, 0.5, "no imbalance prices in this run", transform=price_ax.transAxes,
            ha="center", va="center", color="0.4",
        )  # fmt: skip
    else:
        ys = [math.nan if p is None else p for _, p in result.prices]
        price_ax.step(
            [*(t for t, _ in result.prices), result.end],  # the last period drawn to its end
            [*ys, ys[-1]],
            where="post",
            color="tab:purple",
            linewidth=0.8,
        )
    price_ax.set_ylabel("imbalance price\np/kWh")
    price_ax.axhline(0.0, color="0.6", linewidth=0.5)

    runs: list[tuple[str, BacktestResult, str]] = []
    if base is not None:
        runs.append((f"base: {base_label or 'base'}", base, "tab:orange"))
    runs.append((label, result, "tab:blue"))
    for name, run, colour in runs:
        for ax, soe, first in ((soe_ax, True, soe_start), (value_ax, False, 0.0)):
            xs, ys = _line(start, first, run.trace, soe)
            ax.plot(xs, ys, color=colour, linewidth=1.0, label=f"{name} ({_captured(run)})")
    if result.optimum_trace:
        ref = result.reference_total
        worth = f" (£{ref.optimum_gbp:,.0f})" if ref is not None else ""
        for ax, soe, first in ((soe_ax, True, soe_start), (value_ax, False, 0.0)):
            xs, ys = _line(start, first, result.optimum_trace, soe)
            ax.plot(xs, ys, color="0.35", linestyle="--", linewidth=0.9,
                    label=f"perfect-foresight optimum{worth}")  # fmt: skip
    for limit in (result.soe_min_kwh, result.soe_max_kwh):
        soe_ax.axhline(limit, color="0.6", linestyle=":", linewidth=0.8)
    soe_ax.set_ylabel("SoE kWh\n(dotted: limits)")
    soe_ax.legend(loc="upper left", fontsize="small")
    value_ax.set_ylabel("battery value so far\n£ over idle")
    value_ax.axhline(0.0, color="0.6", linewidth=0.5)

    locator = mdates.AutoDateLocator(tz=tz)
    value_ax.xaxis.set_major_locator(locator)
    value_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    value_ax.set_xlabel(f"local time ({result.timezone})")
    value_ax.set_xlim(start, result.end)
    price_ax.set_title(
        f"{result.site_id}: {len(result.days)} day(s) from {start:%Y-%m-%d}, "
        f"{label}: {_captured(result)}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
