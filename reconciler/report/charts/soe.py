"""The battery's SoE distribution: hours spent in each band of nameplate energy."""

from __future__ import annotations

from typing import Any

from reconciler.report.charts import png, pyplot


def soe_chart(figures: dict[str, Any]) -> bytes:
    plt = pyplot()
    soe = figures["battery"]["soe"]
    fig, ax = plt.subplots(figsize=(9, 3.0))
    ax.bar(soe["bands_pct"], soe["hours_by_band"], color="tab:blue")
    pct = soe["percentiles_pct"] or {}
    for key, style in (("p5", ":"), ("p50", "-"), ("p95", ":")):
        if key in pct:
            # Bands are categories 0..n-1 of width SOE_BIN_PCT: place the line by value.
            width = 100 / len(soe["bands_pct"])
            ax.axvline(pct[key] / width - 0.5, color="black", linestyle=style, linewidth=1,
                       label=f"{key} {pct[key]:.0f} %")  # fmt: skip
    ax.set_xlabel("SoE, % of nameplate energy")
    ax.set_ylabel("hours")
    ax.set_title(f"{figures['site']}: battery SoE distribution (half-hour ends)")
    if pct:
        ax.legend(fontsize="small")
    return png(fig)
