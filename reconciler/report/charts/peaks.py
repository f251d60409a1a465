"""Red-band peaks per day, with the battery and as the same day would have been without."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import MAX_BARS, bars, day_axis, png, pyplot


def peaks_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    days = figures["peaks"]["days"]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    xs = day_axis(ax, [d["date"] for d in days])
    without = [d["without_battery_kw"] for d in days]
    with_battery = [d["with_battery_kw"] for d in days]
    if len(days) <= MAX_BARS:
        ax.bar([x - 0.2 for x in xs], without, width=0.4, label="without battery",
               color="tab:grey", linewidth=0)  # fmt: skip
        ax.bar([x + 0.2 for x in xs], with_battery, width=0.4, label="with battery",
               color="tab:red", linewidth=0)  # fmt: skip
    else:  # a year of pairs of bars: two outlines, the battery's in front
        zero = [0.0] * len(xs)
        bars(ax, xs, without, zero, label="without battery", color="tab:grey")
        bars(ax, xs, with_battery, zero, label="with battery", color="tab:red")
    ax.set_ylabel("highest half-hour import kW")
    ax.set_title(f"{figures['site']}: red-band peaks")
    ax.legend(fontsize="small", loc="upper left")
    return png(fig)
