"""The report's charts: one module per chart, each a function of the figures returning a
PNG (bytes). matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from typing import Any

from reconciler import plots


def pyplot() -> Any:
    """matplotlib.pyplot for the HTML report's charts (see :func:`reconciler.plots.pyplot`)."""
    return plots.pyplot("the HTML report's charts", "or use --output markdown or json")


png = plots.png


#: At most this many day labels under a chart (a year's 366 would be unreadable, and
#: matplotlib lays out each one).
MAX_DAY_LABELS = 16


def day_axis(ax: Any, dates: list[str]) -> list[int]:
    """Number the days 0..n-1 on ``ax``'s x axis, labelling at most
    :data:`MAX_DAY_LABELS` of them (MM-DD); returns the positions. Numbers, not category
    names: a categorical axis of a year's days costs seconds to draw."""
    xs = list(range(len(dates)))
    step = max(1, -(-len(dates) // MAX_DAY_LABELS))
    ax.set_xticks(xs[::step], [d[5:] for d in dates[::step]], rotation=60, fontsize="small")
    ax.set_xlim(-0.5, len(dates) - 0.5)
    return xs


#: Up to this many days a chart draws one bar per day; beyond, one filled step outline
#: per series (a bar is a patch of its own: a year's stacked bars take seconds).
MAX_BARS = 62


def bars(ax: Any, xs: list[int], values: list[float], bottom: list[float], **kw: Any) -> None:
    """Bars of ``values`` on ``bottom`` at ``xs`` (consecutive days), width 0.9 (or 1,
    as one step patch, past :data:`MAX_BARS` days)."""
    if len(xs) <= MAX_BARS:
        ax.bar(xs, values, bottom=bottom, width=0.9, linewidth=0, **kw)
        return
    top = [b + v for b, v in zip(bottom, values, strict=True)]
    edges = [x - 0.5 for x in xs] + [xs[-1] + 0.5]
    ax.stairs(top, edges, baseline=bottom, fill=True, linewidth=0, **kw)
