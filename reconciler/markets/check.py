"""`flux markets check`: call each market API a site file configures, once, the way the
agent would (same clients, same credentials from the environment), and say what came back.
For setting up a site, or for whoever is woken because the agent says a feed is failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from reconciler.config.model import Site
from reconciler.markets.axle import AxleClient
from reconciler.markets.delivery import AxleDelivery
from reconciler.markets.errors import MarketError
from reconciler.markets.live import Environ, build_clients
from reconciler.markets.modo import ModoClient
from reconciler.markets.points import MarketPoint


@dataclass(frozen=True)
class CheckResult:
    """One API: whether the call gave usable data, and what (or why not)."""

    source: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok, "detail": self.detail}


def _summary(client: Any, points: list[MarketPoint], now: datetime) -> str:
    if isinstance(client, AxleClient):
        steps = client.axle_steps(now)
        if not steps:
            return "schedule fetched: no steps ahead"
        first = steps[0]
        return (
            f"schedule fetched: {len(steps)} step(s) ahead; next {first.action} "
            f"{first.start:%Y-%m-%d %H:%M}-{first.end:%H:%M} UTC"
            + (" (deviation allowed)" if first.allow_deviation else "")
        )
    if not points:
        return "the reply held no values"
    latest = max(points, key=lambda p: p.period)
    unit = "MWh" if latest.type == "niv" else "p/kWh"
    detail = (
        f"{len(points)} value(s); latest {latest.type} {latest.value:g} {unit} for {latest.period}"
    )
    if isinstance(client, ModoClient):
        detail += " (one endpoint per call: the agent alternates price and NIV each minute)"
    return detail


async def check_markets(
    site: Site, environ: Environ, http: httpx.AsyncClient, now: datetime
) -> list[CheckResult]:
    """One call to each configured API (delivery reports are not sent: there is nothing
    to report), and a failed row for each credential variable that is not set."""
    built = build_clients(site.markets, http, environ)
    notes: dict[str, str] = {}
    for problem in built.problems:
        source, text = problem.split(":", 1)
        notes[source] = text.strip()
    results: list[CheckResult] = []
    for client in built.clients:
        if isinstance(client, AxleDelivery):
            continue
        note = notes.pop(client.source, None)
        try:
            points = await client.poll(now)
        except MarketError as exc:
            detail = f"{exc.what}: {exc.problem}"
            ok = False
        else:
            detail = _summary(client, points, now)
            ok = True
        results.append(CheckResult(client.source, ok, f"{detail} [{note}]" if note else detail))
    # A credential problem that left its client out altogether.
    results += [CheckResult(source, False, text) for source, text in notes.items()]
    return results
