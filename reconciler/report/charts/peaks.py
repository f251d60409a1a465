"""Red-band peaks per day, with the battery and as the same day would have been without."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import png, pyplot


def peaks_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    days = figures["peaks"]["days"]
    labels = [d["date"][5:] for d in days]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    xs = list(range(len(days)))
    ax.bar([x - 0.2 for x in xs], [d["without_battery_kw"] for d in days], width=0.4,
           label="without battery", color="tab:grey")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [d["with_battery_kw"] for d in days], width=0.4,
           label="with battery", color="tab:red")  # fmt: skip
    ax.set_xticks(xs, labels, rotation=60, fontsize="small")
    ax.set_ylabel("highest half-hour import kW")
    ax.set_title(f"{figures['site']}: red-band peaks")
    ax.legend(fontsize="small")
    return png(fig)
