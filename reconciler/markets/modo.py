"""Modo Energy live imbalance estimates (system price and NIV), as an ImbalanceFeed.

Modo allows about one call a minute across both endpoints, so each poll makes exactly one
call, alternating ``system-price-live`` and ``niv-live`` (price first). Every value is kept
with the settlement period the reply says it is for; deciding whether a value for the
previous period may stand in for the current one is :mod:`reconciler.control.prediction`'s
job, not this client's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import httpx

from reconciler.config.model import ModoSettings
from reconciler.control.periods import SettlementPeriod
from reconciler.control.types import PeriodValue
from reconciler.markets.errors import MarketMalformed
from reconciler.markets.fields import (
    finite_number,
    items_of,
    record,
    settlement_day,
    settlement_period,
)
from reconciler.markets.http import request_json
from reconciler.markets.points import (
    POUNDS_PER_MWH_TO_P_PER_KWH,
    ChangedOnly,
    MarketPoint,
    is_fresh,
)

SOURCE = "modo"

Kind = Literal["price", "niv"]


class _Endpoint:
    """One Modo endpoint: its path, the field holding its value and how it is recorded."""

    def __init__(self, path: str, field: str, point_type: str, scale: float) -> None:
        self.path = path
        self.field = field
        self.point_type = point_type
        self.scale = scale
        self.what = f"GET {path}"


_PRICE = _Endpoint(
    "system-price-live", "system_price", "imbalance_price", POUNDS_PER_MWH_TO_P_PER_KWH
)
_NIV = _Endpoint("niv-live", "niv", "niv", 1.0)


def _parse(endpoint: _Endpoint, body: Any) -> dict[SettlementPeriod, float]:
    """Every result of a reply as {period: value in the API's unit}; MarketMalformed
    naming the field and index on the first thing not shaped as documented."""

    def bad(problem: str) -> MarketMalformed:
        return MarketMalformed(SOURCE, endpoint.what, problem)

    try:
        results = items_of(body, "results")
    except ValueError as exc:
        raise bad(str(exc)) from None
    values: dict[SettlementPeriod, float] = {}
    for i, item in enumerate(results):
        where = f"results[{i}]"
        try:
            item = record(item, where, ("date", "settlement_period", endpoint.field))
        except ValueError as exc:
            raise bad(str(exc)) from None
        try:
            field = "date"
            day = settlement_day(item["date"])
            field = "settlement_period"
            period = settlement_period(day, item["settlement_period"])
            field = endpoint.field
            value = finite_number(item[endpoint.field])
        except ValueError as exc:
            raise bad(f"{where}.{field}: {exc}") from None
        if period in values and values[period] != value:
            # Two different values for one period: either could be the estimate, so
            # neither is trusted.
            raise bad(f"{where}: {period} appears twice with different values")
        values[period] = float(value)
    return values


class ModoClient:
    """Live imbalance price (p/kWh) and NIV (MWh, + short) from Modo Energy.

    ``poll(now)`` is called every ``poll_s`` seconds by the owner; ``imbalance_price`` and
    ``imbalance_volume`` serve the latest period seen, or None once it is stale.
    """

    source = SOURCE

    def __init__(
        self,
        settings: ModoSettings,
        *,
        client: httpx.AsyncClient,
        api_key: str | None = None,
    ) -> None:
        self.poll_s = settings.poll_s
        self._base_url = settings.base_url.rstrip("/")
        self._client = client
        self._headers = {"X-Token": api_key} if api_key else {}
        self._next: Kind = "price"
        self._latest: dict[Kind, PeriodValue | None] = {"price": None, "niv": None}
        self._changed = ChangedOnly()
        self.last_success_at: datetime | None = None

    async def poll(self, now: datetime) -> list[MarketPoint]:
        """One call to Modo; the points not recorded before (price p/kWh or NIV MWh).

        Raises MarketError (unavailable, rejected, malformed); the cache is then unchanged.
        """
        kind = self._next
        # The turn passes even when the call fails: a failing endpoint must not starve
        # the other one, and a refused call still counts against the rate limit.
        self._next = "niv" if kind == "price" else "price"
        endpoint = _PRICE if kind == "price" else _NIV
        body = await request_json(
            self._client,
            SOURCE,
            "GET",
            f"{self._base_url}/{endpoint.path}",
            what=endpoint.what,
            headers=self._headers,
        )
        values = _parse(endpoint, body)
        self.last_success_at = now
        if not values:
            return []
        latest = max(values)
        cached = self._latest[kind]
        # A reply that lags behind one already seen (a stale replica, a cache) must not
        # move the feed back in time.
        if cached is None or latest >= cached.period:
            self._latest[kind] = PeriodValue(latest, values[latest] * endpoint.scale)
        points = [
            MarketPoint(period, endpoint.point_type, value * endpoint.scale, SOURCE, now)
            for period, value in sorted(values.items())
        ]
        return self._changed.new(points)

    def imbalance_price(self, at: datetime) -> PeriodValue | None:
        """The latest imbalance price estimate, p/kWh, unless older than the previous period."""
        return is_fresh(self._latest["price"], at)

    def imbalance_volume(self, at: datetime) -> PeriodValue | None:
        """The latest NIV estimate, MWh (+ short), unless older than the previous period."""
        return is_fresh(self._latest["niv"], at)
