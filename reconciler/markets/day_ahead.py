"""Day-ahead prices for the `optimise` mode's plans, from a feed the site configures.

GB's day-ahead auctions publish tomorrow's prices once a day (late morning). There is
no one API for them, so Flux reads one small JSON shape (docs/domain.md, "Day-ahead
prices") that any adapter in front of a supplier's or exchange's API can serve::

    {"prices": [{"period_start": "2024-01-15T17:00:00Z", "price_p_per_kwh": 23.4}, ...]}

``period_start`` is an ISO 8601 instant with its offset, on a settlement-period boundary
(:00 or :30); the price is p/kWh. Hourly prices are given as two periods. The planner
uses a published price in place of its own forecast for that period; control never
reads them. A reply that is not that shape is refused whole (the last good prices stay),
naming the item and field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from reconciler.config.model import DayAheadSettings
from reconciler.control.periods import PERIOD, period_at
from reconciler.control.types import PeriodValue
from reconciler.markets.errors import MarketMalformed
from reconciler.markets.fields import finite_number, items_of, record
from reconciler.markets.http import request_json
from reconciler.markets.points import ChangedOnly, MarketPoint

SOURCE = "day_ahead"
TYPE = "day_ahead_price"
#: Published prices older than this many periods are forgotten (a day).
KEEP_PERIODS = 48


def _instant(raw: object) -> datetime:
    if not isinstance(raw, str):
        raise ValueError(f"expected an ISO 8601 time, got {raw!r}")
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError(f"{raw!r} has no UTC offset (write Z or +01:00)")
    at = at.astimezone(UTC)
    if at.minute % 30 or at.second or at.microsecond:
        raise ValueError(f"{raw!r} is not the start of a settlement period (:00 or :30)")
    return at


def parse(body: object, what: str) -> dict[datetime, float]:
    """Every price of a reply as {UTC period start: p/kWh}; MarketMalformed naming the
    item and field of the first thing not shaped as documented."""

    def bad(problem: str) -> MarketMalformed:
        return MarketMalformed(SOURCE, what, problem)

    try:
        items = items_of(body, "prices")
    except ValueError as exc:
        raise bad(str(exc)) from None
    prices: dict[datetime, float] = {}
    for i, item in enumerate(items):
        where = f"prices[{i}]"
        field = "period_start"
        try:
            item = record(item, where, ("period_start", "price_p_per_kwh"))
            start = _instant(item["period_start"])
            field = "price_p_per_kwh"
            value = finite_number(item["price_p_per_kwh"])
        except ValueError as exc:
            text = str(exc)
            raise bad(text if text.startswith(where) else f"{where}.{field}: {text}") from None
        if start in prices and prices[start] != value:
            raise bad(f"{where}: {start.isoformat()} appears twice with different prices")
        prices[start] = value
    return prices


class DayAheadClient:
    """Polls the feed every ``poll_s`` seconds; :meth:`day_ahead` serves the published
    prices of the current period and later ones."""

    source = SOURCE

    def __init__(
        self, settings: DayAheadSettings, *, client: httpx.AsyncClient, api_key: str | None = None
    ) -> None:
        self.poll_s = settings.poll_s
        self._url = settings.url
        self._client = client
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._prices: dict[datetime, float] = {}
        self._changed = ChangedOnly()
        # The tuple served, rebuilt only when the prices or the current period change:
        # signals are taken every tick.
        self._served: tuple[datetime, tuple[PeriodValue, ...]] | None = None

    async def poll(self, now: datetime) -> list[MarketPoint]:
        """One fetch; the prices not recorded before. Raises MarketError (the prices held
        are then unchanged)."""
        what = "GET day-ahead prices"
        body = await request_json(
            self._client, SOURCE, "GET", self._url, what=what, headers=self._headers
        )
        fetched = parse(body, what)
        forget = period_at(now).start - KEEP_PERIODS * PERIOD
        self._prices = {t: v for t, v in {**self._prices, **fetched}.items() if t >= forget}
        self._served = None
        points = [
            MarketPoint(period_at(t), TYPE, v, SOURCE, now) for t, v in sorted(fetched.items())
        ]
        return self._changed.new(points)

    def day_ahead(self, at: datetime) -> tuple[PeriodValue, ...]:
        current = period_at(at)
        if self._served is None or self._served[0] != current.start:
            values = tuple(
                PeriodValue(period_at(t), v)
                for t, v in sorted(self._prices.items())
                if t >= current.start
            )
            self._served = (current.start, values)
        return self._served[1]
