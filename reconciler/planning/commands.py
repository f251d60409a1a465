"""`flux plan`: the plan the `optimise` mode would follow, made from recorded prices."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table

from reconciler.cliparams import instant
from reconciler.config.commands import find_site, load_valid_site, sites_dir_option
from reconciler.config.model import OptimiseParams, Site
from reconciler.control.periods import PERIOD
from reconciler.control.schedule import zone
from reconciler.control.types import Plan
from reconciler.markets.memory import ReplayImbalanceFeed
from reconciler.planning.planner import Planner, site_rates
from reconciler.planning.runner import optimise_params
from reconciler.plots import check_plot_path
from reconciler.sim.curves import load_per_home, solar_per_kwp

PLOTS = "plan plots"


def _net_load_kw(site: Site, at: datetime) -> float:
    """The simulator's homes and solar at ``at`` (kW, + consumption)."""
    mid = at + PERIOD / 2
    return load_per_home().at(mid) * site.site.homes - solar_per_kwp().at(mid) * site.site.solar_kwp


def make_plan(site: Site, params: OptimiseParams, at: datetime, soe_kwh: float) -> Plan | None:
    """The plan at ``at`` from January 2024's prices (replayed onto any date) and the
    simulator's load and solar, with ``params.history_days`` of both known beforehand."""
    feed = ReplayImbalanceFeed.january_2024()
    planner = Planner(site, params)
    first = at - timedelta(days=params.history_days)
    for k in range(params.history_days * 48):
        start = first + k * PERIOD
        value = feed.imbalance_price(start)
        if value is not None:
            planner.prices.add(value.period.start, value.value)
            planner.net_load.observe(value.period.start, _net_load_kw(site, value.period.start))
    live = feed.imbalance_price(at)
    return planner.plan(
        at,
        soe_kwh=soe_kwh,
        net_load_kw=_net_load_kw(site, at),
        live_price=live.value if live is not None else None,
    )


def plan_json(site: Site, plan: Plan, soe_start_kwh: float) -> dict[str, Any]:
    imports, exports = site_rates(site, [(s.start, s.end) for s in plan.steps])
    return {
        "site": site.site.id,
        "made_at": plan.made_at.isoformat(),
        "soe_start_kwh": round(soe_start_kwh, 1),
        "expected_value_gbp": round(plan.expected_value_gbp, 2),
        "steps": [
            {
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "battery_kw": round(s.battery_kw, 1),
                "soe_end_kwh": round(s.soe_end_kwh, 1),
                "price_p_per_kwh": round(s.price, 2),
                "import_rate_p_per_kwh": imp,
                "export_rate_p_per_kwh": exp,
            }
            for s, imp, exp in zip(plan.steps, imports, exports, strict=True)
        ],
    }


@click.command()
@click.argument("site")
@click.option(
    "--at",
    "at_text",
    default=None,
    help="Local instant to plan from, YYYY-MM-DDTHH:MM (default: now).",
)
@click.option(
    "--soe",
    default=None,
    help="SoE to plan from: kWh (640) or a percentage of the nameplate (50%) [default: the "
    "site's simulation.initial_soe].",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the plan (price, power, SoE) to this file (.png, .svg or .pdf).",
)
@sites_dir_option
def plan(
    site: str,
    at_text: str | None,
    soe: str | None,
    output: str,
    plot: Path | None,
    sites_dir: Path,
) -> None:
    """The plan the site's `optimise` entry would follow from an instant: power and SoE per
    settlement period over its horizon, at the forecast prices.

    Prices are January 2024's GB imbalance prices replayed onto the date (the fortnight
    before is what the forecast knows), load and solar the simulator's. Exit codes: 0 a
    plan, 1 no plan could be made, 2 usage.
    """
    if plot is not None:
        check_plot_path(plot, PLOTS, "or leave --plot out")
    path = find_site(site, sites_dir)
    loaded = load_valid_site(path)
    tz = zone(loaded.site.timezone)
    at = _start(at_text, tz)
    soe_kwh = _soe_kwh(loaded, soe)
    params = optimise_params(loaded)
    if params is None:
        click.echo(
            f"{path}: no optimise entry in its schedule; planning with the mode's defaults",
            err=True,
        )
        params = OptimiseParams()
    made = make_plan(loaded, params, at, soe_kwh)
    if made is None:
        raise click.ClickException("no plan: no prices are known before that instant")
    if output == "json":
        click.echo(json.dumps(plan_json(loaded, made, soe_kwh), indent=2))
    else:
        _print(loaded, made)
    if plot is not None:
        from reconciler.planning.chart import draw_plan

        draw_plan(loaded, made, plot)
        click.echo(f"plot written to {plot}", err=True)


def _start(text: str | None, tz: ZoneInfo) -> datetime:
    """--at as an aware instant (local to the site without an offset); now if not given.
    A local time the clocks skip is moved on by the gap, and the user is told."""
    if text is None:
        return datetime.now(tz)
    at = instant(text, tz, "--at")
    if at.tzinfo is tz:
        wall = at.replace(tzinfo=None)
        real = at.astimezone(UTC).astimezone(tz)
        if real.replace(tzinfo=None) != wall:
            click.echo(
                f"--at {text}: no such local time in {tz.key} (the clocks go forward); "
                f"planning from {real:%Y-%m-%d %H:%M %Z}",
                err=True,
            )
            return real
    return at


def _soe_kwh(site: Site, text: str | None) -> float:
    """--soe as kWh: a number is kWh, ``N%`` a share of the nameplate; it must lie within
    the battery (0 to nameplate kWh). The site's simulation.initial_soe if not given."""
    if text is None:
        return site.energy_kwh(site.simulation.initial_soe)
    nameplate = site.devices.battery.nameplate_energy_kwh
    value = text.strip()
    try:
        kwh = site.energy_kwh(value) if value.endswith("%") else float(value)
    except ValueError:
        kwh = math.nan
    if not math.isfinite(kwh):
        raise click.BadParameter(
            f"{text!r} is not kWh (e.g. 640) or a percentage of the nameplate (e.g. 50%)",
            param_hint="--soe",
        )
    if not 0.0 <= kwh <= nameplate:
        raise click.BadParameter(
            f"{text!r} is {kwh:,.1f} kWh, outside the battery (0 to {nameplate:,.0f} kWh)",
            param_hint="--soe",
        )
    return kwh


def _print(site: Site, plan: Plan) -> None:
    tz = zone(site.site.timezone)
    nameplate = site.devices.battery.nameplate_energy_kwh
    table = Table(
        title=(
            f"plan for {site.site.id} from {plan.made_at.astimezone(tz):%Y-%m-%d %H:%M} "
            f"({site.site.timezone}): {plan.expected_value_gbp:+,.2f} £ expected"
        ),
        title_justify="left",
    )
    for col in ("local start", "battery kW", "action", "SoE at end", "price p/kWh"):
        table.add_column(col, justify="right" if col != "action" else "left")
    for s in plan.steps:
        action = "charge" if s.battery_kw < -0.5 else "discharge" if s.battery_kw > 0.5 else "-"
        table.add_row(
            f"{s.start.astimezone(tz):%a %H:%M}",
            f"{s.battery_kw:+,.0f}",
            action,
            f"{s.soe_end_kwh:,.0f} kWh ({100 * s.soe_end_kwh / nameplate:.0f}%)",
            f"{s.price:.2f}",
        )
    Console().print(table)
