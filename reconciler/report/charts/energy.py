"""Daily energy: import, solar and battery discharge stacked up, export and charge down."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import png, pyplot


def energy_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    days = figures["energy"]["days"]
    labels = [d["date"][5:] for d in days]
    fig, ax = plt.subplots(figsize=(9, 3.6))
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
        ax.bar(labels, values, bottom=base, label=label, color=color)
        base = [a + b for a, b in zip(base, values, strict=True)]
    base = [0.0] * len(days)
    for key, label, color in down:
        values = [-d[key] for d in days]
        ax.bar(labels, values, bottom=base, label=label, color=color)
        base = [a + b for a, b in zip(base, values, strict=True)]
    ax.plot(labels, [d["load_kwh"] for d in days], "k.-", label="homes' load")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("kWh per day")
    ax.set_title(f"{figures['site']}: energy per local day ({figures['timezone']})")
    ax.legend(fontsize="small", ncol=3)
    ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    return png(fig)
