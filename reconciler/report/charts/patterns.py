"""Consumption patterns: mean load per local weekday and half hour, as a heatmap."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import png, pyplot


def patterns_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    p = figures["patterns"]
    nan = float("nan")
    values = [[nan if v is None else v for v in row] for row in p["load_kw_by_weekday"]]
    fig, ax = plt.subplots(figsize=(9, 2.8))
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(7), p["weekdays"])
    ax.set_xticks(range(0, 48, 4), p["half_hours"][::4], fontsize="small")
    ax.set_xlabel(f"local time ({figures['timezone']})")
    ax.set_title(f"{figures['site']}: homes' mean load kW by weekday and half hour")
    fig.colorbar(image, ax=ax, label="kW")
    return png(fig)
