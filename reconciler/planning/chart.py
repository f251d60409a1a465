"""A plan drawn: forecast price, the battery's power and its SoE per settlement period."""

from __future__ import annotations

from pathlib import Path

from reconciler.config.model import Site
from reconciler.control.schedule import zone
from reconciler.control.types import Plan
from reconciler.plots import pyplot


def draw_plan(site: Site, plan: Plan, path: Path) -> None:
    """Draw ``plan`` to ``path``, of the kind its extension names (matplotlib, no display
    needed)."""
    plt = pyplot("plan plots")
    tz = zone(site.site.timezone)
    starts = [s.start.astimezone(tz) for s in plan.steps]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    top.step(starts, [s.price for s in plan.steps], where="post", color="tab:purple")
    top.set_ylabel("forecast price p/kWh")
    top.set_title(
        f"{site.site.id}: plan of {plan.made_at.astimezone(tz):%Y-%m-%d %H:%M} "
        f"({plan.expected_value_gbp:+,.0f} £ expected)"
    )
    width = 1 / 48 * 0.9  # days: a bar per half hour
    bottom.bar(
        starts,
        [s.battery_kw for s in plan.steps],
        width=width,
        align="edge",
        color=["tab:red" if s.battery_kw > 0 else "tab:green" for s in plan.steps],
    )
    bottom.set_ylabel("battery kW (+ discharge)")
    soe = bottom.twinx()
    soe.plot([s.end.astimezone(tz) for s in plan.steps], [s.soe_end_kwh for s in plan.steps])
    soe.set_ylabel("SoE kWh")
    bottom.set_xlabel(f"local time ({site.site.timezone})")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
