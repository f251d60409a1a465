"""The average day of each month: mean load (solid) and solar (dashed) kW per local half
hour, one colour per month."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import png, pyplot


def average_day_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    p = figures["patterns"]
    months = p["average_day_by_month"]
    nan = float("nan")
    xs = list(range(48))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    colours = plt.get_cmap("viridis" if len(months) > 10 else "tab10")
    for k, (month, day) in enumerate(months.items()):
        colour = colours(k / max(len(months) - 1, 1) if len(months) > 10 else k)
        ax.plot(xs, [nan if v is None else v for v in day["load_kw"]], color=colour,
                label=month)  # fmt: skip
        ax.plot(xs, [nan if v is None else v for v in day["solar_kw"]], color=colour,
                linestyle="--")  # fmt: skip
    ax.set_xticks(range(0, 48, 4), p["half_hours"][::4], fontsize="small")
    ax.set_xlabel(f"local time ({figures['timezone']}); solid load, dashed solar")
    ax.set_ylabel("kW")
    ax.set_title(f"{figures['site']}: the average day of each month")
    ax.legend(fontsize="small", ncol=min(len(months), 6), loc="upper left")
    return png(fig)
