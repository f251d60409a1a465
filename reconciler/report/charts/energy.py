"""Daily energy: import, solar and battery discharge stacked up, export and charge down."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import bars, day_axis, png, pyplot


def energy_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    days = figures["energy"]["days"]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    xs = day_axis(ax, [d["date"] for d in days])
    up = [
        ("grid_import_kwh", "grid import", "tab:red"),
        ("solar_kwh", "solar", "gold"),
        ("battery_discharged_kwh", "battery discharge", "tab:blue"),
    ]
    down = [
        ("grid_export_kwh", "grid export", "tab:green"),
        ("battery_charged_kwh", "battery charge", "tab:cyan"),
    ]
    base = [0.0] * len(days)
    for key, label, color in up:
        values = [d[key] for d in days]
        bars(ax, xs, values, base, label=label, color=color)
        base = [a + b for a, b in zip(base, values, strict=True)]
    base = [0.0] * len(days)
    for key, label, color in down:
        values = [-d[key] for d in days]
        bars(ax, xs, values, base, label=label, color=color)
        base = [a + b for a, b in zip(base, values, strict=True)]
    ax.plot(xs, [d["load_kwh"] for d in days], "k.-" if len(days) <= 62 else "k-",
            label="homes' load")  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("kWh per day")
    ax.set_title(f"{figures['site']}: energy per local day ({figures['timezone']})")
    ax.legend(fontsize="small", ncol=3, loc="upper left")  # "best" searches every point
    return png(fig)
