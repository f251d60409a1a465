"""Elexon Insights settled system prices and NIV (public, no key).

These are settlement values, published after each period and revised by later settlement
runs (the API returns only the latest run), so they are for the record and for revenue.
The client is also an ImbalanceFeed over the latest period seen, a fallback when there is
no Modo key: it lags by a period or more, so the control will often get None from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from reconciler.config.model import ElexonSettings
from reconciler.control.periods import (
    SettlementPeriod,
    local_midnight,
    period_at,
)
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

SOURCE = "elexon"

#: Late periods of yesterday are still being published or revised this long into a day.
YESTERDAY_WINDOW = timedelta(hours=2)


@dataclass(frozen=True)
class SettledPeriod:
    """One period of settled prices: SSP and SBP in £/MWh, NIV in MWh (+ short)."""

    period: SettlementPeriod
    system_sell_price: float
    system_buy_price: float
    net_imbalance_volume: float


def settlement_dates(now: datetime) -> list[date]:
    """The settlement dates to fetch at ``now``: today's, preceded by yesterday's during
    the first :data:`YESTERDAY_WINDOW` of the settlement day."""
    today = period_at(now).day
    if now - local_midnight(today) < YESTERDAY_WINDOW:
        return [today - timedelta(days=1), today]
    return [today]


def _parse(day: date, what: str, body: Any) -> list[SettledPeriod]:
    """The rows of a system-prices reply for ``day``; MarketMalformed naming the field
    and index on the first thing not shaped as documented."""

    def bad(problem: str) -> MarketMalformed:
        return MarketMalformed(SOURCE, what, problem)

    try:
        rows = items_of(body, "data")
    except ValueError as exc:
        raise bad(str(exc)) from None
    fields = (
        "settlementDate",
        "settlementPeriod",
        "startTime",
        "systemSellPrice",
        "systemBuyPrice",
        "netImbalanceVolume",
    )
    settled: dict[SettlementPeriod, SettledPeriod] = {}
    for i, row in enumerate(rows):
        where = f"data[{i}]"
        try:
            row = record(row, where, fields)
        except ValueError as exc:
            raise bad(str(exc)) from None
        try:
            field = "settlementDate"
            if settlement_day(row["settlementDate"]) != day:
                raise ValueError(f"{row['settlementDate']} in the reply for {day}")
            field = "settlementPeriod"
            period = settlement_period(day, row["settlementPeriod"])
        except ValueError as exc:
            raise bad(f"{where}.{field}: {exc}") from None
        raw_start = row["startTime"]
        try:
            start = datetime.fromisoformat(raw_start) if isinstance(raw_start, str) else None
        except ValueError:
            start = None
        if start is None or start.tzinfo is None:
            raise bad(f"{where}.startTime: expected a UTC ISO instant, got {raw_start!r}")
        # On clock-change days a period number maps to a different instant than on other
        # days; a disagreement means one side counts periods wrongly, so trust neither.
        if start != period.start:
            raise bad(
                f"{where}.startTime: {raw_start} but {period} starts at {period.start.isoformat()}"
            )
        values = []
        for name in fields[3:]:
            try:
                values.append(finite_number(row[name]))
            except ValueError as exc:
                raise bad(f"{where}.{name}: {exc}") from None
        if period in settled:
            raise bad(f"{where}: {period} appears twice")
        settled[period] = SettledPeriod(period, *values)
    return [settled[p] for p in sorted(settled)]


class ElexonClient:
    """Settled system sell/buy prices (p/kWh) and NIV (MWh, + short) from Elexon Insights.

    ``poll(now)`` is called every ``poll_s`` seconds by the owner. As an ImbalanceFeed it
    serves the SSP and NIV of the latest period seen, or None once that is stale.
    """

    source = SOURCE

    def __init__(self, settings: ElexonSettings, *, client: httpx.AsyncClient) -> None:
        self.poll_s = settings.poll_s
        self._base_url = settings.base_url.rstrip("/")
        self._client = client
        self._latest: SettledPeriod | None = None
        self._changed = ChangedOnly()
        self.last_success_at: datetime | None = None

    async def poll(self, now: datetime) -> list[MarketPoint]:
        """Fetch the settlement date of ``now`` (and yesterday's early in the day); the
        points not recorded before, a revised value counting as new.

        Raises MarketError on the first failed or malformed call; nothing from the poll is
        then cached or recorded, and the next poll fetches it all again.
        """
        rows: list[SettledPeriod] = []
        for day in settlement_dates(now):
            what = f"GET system-prices/{day.isoformat()}"
            url = f"{self._base_url}/balancing/settlement/system-prices/{day.isoformat()}"
            body = await request_json(self._client, SOURCE, "GET", url, what=what)
            rows.extend(_parse(day, what, body))
        self.last_success_at = now
        if not rows:
            return []
        latest = max(rows, key=lambda r: r.period)
        if self._latest is None or latest.period >= self._latest.period:
            self._latest = latest
        points: list[MarketPoint] = []
        for row in rows:
            points += [
                MarketPoint(
                    row.period,
                    "system_sell_price",
                    row.system_sell_price * POUNDS_PER_MWH_TO_P_PER_KWH,
                    SOURCE,
                    now,
                ),
                MarketPoint(
                    row.period,
                    "system_buy_price",
                    row.system_buy_price * POUNDS_PER_MWH_TO_P_PER_KWH,
                    SOURCE,
                    now,
                ),
                MarketPoint(row.period, "niv", row.net_imbalance_volume, SOURCE, now),
            ]
        return self._changed.new(points)

    def imbalance_price(self, at: datetime) -> PeriodValue | None:
        """The system sell price of the latest settled period, p/kWh (SSP = SBP since
        2015), unless older than the previous period."""
        if self._latest is None:
            return None
        value = self._latest.system_sell_price * POUNDS_PER_MWH_TO_P_PER_KWH
        return is_fresh(PeriodValue(self._latest.period, value), at)

    def imbalance_volume(self, at: datetime) -> PeriodValue | None:
        """The NIV of the latest settled period, MWh (+ short), unless older than the
        previous period."""
        if self._latest is None:
            return None
        return is_fresh(PeriodValue(self._latest.period, self._latest.net_imbalance_volume), at)
