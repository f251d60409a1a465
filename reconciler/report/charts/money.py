"""Daily money: the imbalance value and the bill saved against an idle battery."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import bars, day_axis, png, pyplot


def money_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    days = figures["money"]["days"]
    imbalance = [d["imbalance_value_gbp"] for d in days]
    saved = [d["bill_saved_gbp"] for d in days]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    xs = day_axis(ax, [d["date"] for d in days])
    bars(ax, xs, imbalance, [0.0] * len(xs), label="imbalance value", color="tab:purple")
    bars(ax, xs, saved, imbalance, label="bill saved", color="tab:orange")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("£ per day")
    ax.set_title(f"{figures['site']}: what the battery earned per local day")
    ax.legend(fontsize="small", loc="upper left")
    return png(fig)
