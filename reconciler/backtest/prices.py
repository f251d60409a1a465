"""GB imbalance prices and NIV per settlement period, from the common file shapes.

A :class:`PriceSeries` maps the UTC start of each settlement period to its imbalance price
(p/kWh) and, where known, its net imbalance volume (NIV, MWh, + system short). Periods are
always placed from settlement date and period number through Europe/London, so clock-change
days have 46 or 50 periods (never from local wall-clock times, which repeat in October).

Shapes read by :func:`parse_prices` (recognised by the header):

- the Elexon portal SSPSBPNIV file: ``Settlement Date`` (dd/mm/yyyy), ``Settlement Period``,
  ``System Sell Price(£/MWh)``, ``System Buy Price(£/MWh)``, ``Net Imbalance Volume(MWh)``;
- the BMRS B1770 (prices) / B1780 (volumes) pair, either as the BMRS API writes them
  (``settlementDate``, ``settlementPeriod``, ``priceCategory``, ``imbalancePriceAmount`` /
  ``imbalanceQuantityMAW``) or pivoted with ``local_datetime`` (ElexonDataPortal): give both
  files (``--prices B1770.csv --prices B1780.csv``);
- a plain ``time,price_p_per_kwh[,niv_mwh]`` CSV (ISO 8601 period starts; no offset = UTC);
- the ``spUTCTime,spClockTime,price|volume`` files shipped for January 2024.

Under single imbalance pricing (from November 2015) SSP and SBP are equal; where they differ
the main price of the period is used: SBP when the system was short (NIV > 0), else SSP.
Prices in £/MWh are divided by 10 for p/kWh.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path

from reconciler.control.periods import PERIOD, SettlementPeriod, periods_in_day
from reconciler.control.signals import FeedSignals
from reconciler.markets.memory import ReplayImbalanceFeed

#: The shipped choices beside the January 2024 file: every whole month of the 3YP file.
SHIPPED_FILE = "imbalance_2016_2019.csv.gz"
SHIPPED_FIRST = date(2016, 7, 1)
SHIPPED_LAST = date(2019, 1, 1)


class PriceFileError(ValueError):
    """A price file that cannot be read: its message names the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        where = path if line is None else f"{path}:{line}"
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")
        self.path, self.line, self.field = path, line, field


@dataclass(frozen=True)
class PriceSeries:
    """Imbalance price (p/kWh) and NIV (MWh, + short) by UTC settlement-period start."""

    prices: Mapping[datetime, float]
    volumes: Mapping[datetime, float]
    source: str

    def __post_init__(self) -> None:
        if not self.prices:
            raise ValueError(f"{self.source}: no imbalance prices")

    @property
    def first(self) -> datetime:
        """UTC start of the first priced period."""
        return min(self.prices)

    @property
    def end(self) -> datetime:
        """UTC end of the last priced period."""
        return max(self.prices) + PERIOD

    def price(self, start: datetime) -> float | None:
        """p/kWh of the period starting at UTC ``start`` (None: not in the series)."""
        return self.prices.get(start)

    def rows(self) -> list[tuple[datetime, float, float | None]]:
        """(UTC period start, p/kWh, NIV MWh or None), in time order."""
        return [(t, self.prices[t], self.volumes.get(t)) for t in sorted(self.prices)]

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether every period of [start, end) has a price."""
        t = start
        while t < end:
            if t not in self.prices:
                return False
            t += PERIOD
        return True

    def feed(self, *, wrap: bool = False) -> ReplayImbalanceFeed:
        """The series served as a live feed would have (the backtest's market)."""
        return ReplayImbalanceFeed(self.prices, self.volumes, wrap=wrap)

    def signals(self, *, wrap: bool = False) -> FeedSignals:
        return FeedSignals(imbalance=self.feed(wrap=wrap))


# --------------------------------------------------------------------------- parsing


def _number(text: str, path: str, line: int, field: str) -> float:
    value = text.strip()
    try:
        out = float(value)
    except ValueError:
        raise PriceFileError(path, line, field, f"{value!r} is not a number") from None
    if not math.isfinite(out):
        raise PriceFileError(path, line, field, f"{value!r} is not a finite number")
    return out


def _settlement_date(text: str, path: str, line: int, field: str) -> date:
    value = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise PriceFileError(path, line, field, f"{value!r} is not a date (dd/mm/yyyy or yyyy-mm-dd)")


def _period_start(day: date, text: str, path: str, line: int, field: str) -> datetime:
    value = text.strip()
    if not value.isdigit():
        raise PriceFileError(path, line, field, f"{value!r} is not a settlement period number")
    number = int(value)
    count = periods_in_day(day)
    if not 1 <= number <= count:
        raise PriceFileError(
            path,
            line,
            field,
            f"period {number} does not exist on {day.isoformat()}, which has {count} periods "
            "(46 on the spring clock change, 50 in autumn)",
        )
    return SettlementPeriod(day, number).start


def _instant(text: str, path: str, line: int, field: str) -> datetime:
    value = text.strip().replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PriceFileError(
            path, line, field, f"{value!r} is not an ISO 8601 time such as 2024-01-01T00:00Z"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if at.minute % 30 or at.second or at.microsecond:
        raise PriceFileError(path, line, field, f"{value!r} is not the start of a half-hour")
    return at


def _put(
    series: dict[datetime, float], at: datetime, value: float, path: str, line: int, field: str
) -> None:
    if at in series:
        raise PriceFileError(
            path, line, field, f"a second value for the period starting {at.isoformat()} (UTC)"
        )
    series[at] = value


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


def _norm(name: str) -> str:
    return name.strip().strip('"').strip().lower()


def _parse_one(
    text: str, path: str, prices: dict[datetime, float], volumes: dict[datetime, float]
) -> None:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        raise PriceFileError(path, 1, None, "the file is empty")
    cols = {_norm(h): i for i, h in enumerate(header)}

    def col(*names: str) -> int | None:
        for n in names:
            if n in cols:
                return cols[n]
        return None

    def cell(row: list[str], i: int, line: int, field: str) -> str:
        if i >= len(row):
            raise PriceFileError(path, line, field, f"the row has {len(row)} columns, no {field}")
        return row[i]

    def num(row: list[str], i: int, line: int, field: str) -> float:
        return _number(cell(row, i, line, field), path, line, field)

    body = [(n, r) for n, r in enumerate(rows, start=2) if r and any(c.strip() for c in r)]

    if "settlement date" in cols and "settlement period" in cols:  # SSPSBPNIV
        sd, sp = cols["settlement date"], cols["settlement period"]
        ssp = col("system sell price(£/mwh)", "ssp")
        sbp = col("system buy price(£/mwh)", "sbp")
        niv = col("net imbalance volume(mwh)", "niv")
        if ssp is None or sbp is None:
            raise PriceFileError(path, 1, None, "no System Sell/Buy Price(£/MWh) columns")
        for n, r in body:
            day = _settlement_date(cell(r, sd, n, "Settlement Date"), path, n, "Settlement Date")
            number = cell(r, sp, n, "Settlement Period")
            at = _period_start(day, number, path, n, "Settlement Period")
            sell = num(r, ssp, n, "System Sell Price")
            buy = num(r, sbp, n, "System Buy Price")
            volume = None
            if niv is not None and cell(r, niv, n, "Net Imbalance Volume").strip():
                volume = _number(r[niv], path, n, "Net Imbalance Volume")
                _put(volumes, at, volume, path, n, "Net Imbalance Volume")
            main = buy if volume is not None and volume > 0 else sell
            _put(prices, at, main / 10.0, path, n, "Settlement Period")
        return

    # BMRS as the API writes it: one row per period (and per price category for B1770).
    if "settlementdate" in cols and "settlementperiod" in cols:
        sd, sp = cols["settlementdate"], cols["settlementperiod"]
        amount, category = col("imbalancepriceamount"), col("pricecategory")
        quantity = col("imbalancequantitymaw")
        if amount is None and quantity is None:
            raise PriceFileError(
                path,
                1,
                None,
                "neither imbalancePriceAmount (B1770) nor imbalanceQuantityMAW (B1780)",
            )
        by_cat: dict[datetime, dict[str, float]] = {}
        line_of: dict[datetime, int] = {}
        for n, r in body:
            day = _settlement_date(cell(r, sd, n, "settlementDate"), path, n, "settlementDate")
            at = _period_start(day, cell(r, sp, n, "settlementPeriod"), path, n, "settlementPeriod")
            if quantity is not None:
                q = num(r, quantity, n, "imbalanceQuantityMAW")
                _put(volumes, at, q, path, n, "settlementPeriod")
            if amount is not None:
                cat = cell(r, category, n, "priceCategory").strip() if category is not None else ""
                p = num(r, amount, n, "imbalancePriceAmount")
                if cat in by_cat.setdefault(at, {}):
                    twice = f"a second {cat or 'price'} for {at.isoformat()}"
                    raise PriceFileError(path, n, "priceCategory", twice)
                by_cat[at][cat] = p
                line_of[at] = n
        for at, cats in by_cat.items():
            _put(prices, at, _main_price(cats) / 10.0, path, line_of[at], "imbalancePriceAmount")
        return

    if "local_datetime" in cols:  # ElexonDataPortal's pivoted B1770 / B1780
        t = cols["local_datetime"]
        excess, insufficient = col("excess balance"), col("insufficient balance")
        quantity = col("imbalancequantitymaw")
        if (excess is None or insufficient is None) and quantity is None:
            raise PriceFileError(
                path,
                1,
                None,
                "a local_datetime file needs Excess/Insufficient balance or imbalanceQuantityMAW",
            )
        for n, r in body:
            at = _instant(cell(r, t, n, "local_datetime"), path, n, "local_datetime")
            if quantity is not None:
                q = num(r, quantity, n, "imbalanceQuantityMAW")
                _put(volumes, at, q, path, n, "local_datetime")
            if excess is not None and insufficient is not None:
                cats = {
                    "Excess balance": num(r, excess, n, "Excess balance"),
                    "Insufficient balance": _number(
                        cell(r, insufficient, n, "Insufficient balance"),
                        path,
                        n,
                        "Insufficient balance",
                    ),
                }
                _put(prices, at, _main_price(cats) / 10.0, path, n, "local_datetime")
        return

    if "sputctime" in cols:  # the shipped January 2024 shape: p/kWh or MWh already
        t = cols["sputctime"]
        target, field = (prices, "price") if "price" in cols else (volumes, "volume")
        if field not in cols:
            raise PriceFileError(path, 1, None, "a spUTCTime file needs a price or volume column")
        for n, r in body:
            value = cell(r, cols[field], n, field)
            if not value.strip():
                continue
            at = _instant(cell(r, t, n, "spUTCTime"), path, n, "spUTCTime")
            _put(target, at, _number(value, path, n, field), path, n, "spUTCTime")
        return

    if "time" in cols and "price_p_per_kwh" in cols:
        t, p = cols["time"], cols["price_p_per_kwh"]
        niv = col("niv_mwh")
        for n, r in body:
            at = _instant(cell(r, t, n, "time"), path, n, "time")
            _put(prices, at, num(r, p, n, "price_p_per_kwh"), path, n, "time")
            if niv is not None and cell(r, niv, n, "niv_mwh").strip():
                _put(volumes, at, _number(r[niv], path, n, "niv_mwh"), path, n, "time")
        return

    raise PriceFileError(
        path,
        1,
        None,
        "not a known price file; expected the SSPSBPNIV file (Settlement Date, Settlement "
        "Period, System Sell/Buy Price, Net Imbalance Volume), BMRS B1770/B1780, or a CSV "
        "with time,price_p_per_kwh[,niv_mwh]",
    )


def _main_price(cats: Mapping[str, float]) -> float:
    """The single price of a period from its B1770 categories (equal since P305)."""
    values = list(cats.values())
    if len(values) == 1:
        return values[0]
    # Dual-price history: insufficient balance (system short) is SBP, the main price then;
    # without NIV here the mean is the neutral choice (the two are equal since Nov 2015).
    return sum(values) / len(values)


def parse_prices(*paths: Path | str) -> PriceSeries:
    """One series from one or more files (e.g. a B1770 and a B1780 file).

    Raises :class:`PriceFileError` (file:line: field: message) on a row that cannot be read,
    a period given twice, or files with no prices at all.
    """
    if not paths:
        raise ValueError("no price file given")
    prices: dict[datetime, float] = {}
    volumes: dict[datetime, float] = {}
    for p in paths:
        path = Path(p)
        try:
            text = _read_text(path)
        except OSError as exc:
            raise PriceFileError(str(path), None, None, f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PriceFileError(str(path), None, None, "not a UTF-8 text file") from None
        _parse_one(text, str(path), prices, volumes)
    names = ", ".join(str(p) for p in paths)
    if not prices:
        raise PriceFileError(
            names, None, None, "no imbalance prices (a B1780 file needs its B1770 file beside it)"
        )
    return PriceSeries(prices, volumes, names)


# --------------------------------------------------------------------------- shipped


def shipped_months() -> list[str]:
    """Names of the shipped months (``YYYY-MM``), oldest first."""
    out: list[str] = []
    m = SHIPPED_FIRST
    while m <= SHIPPED_LAST:
        out.append(f"{m.year:04d}-{m.month:02d}")
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return out


@cache
def _shipped() -> PriceSeries:
    data = resources.files("reconciler.backtest") / "data" / SHIPPED_FILE
    text = gzip.decompress(data.read_bytes()).decode("utf-8")
    prices: dict[datetime, float] = {}
    volumes: dict[datetime, float] = {}
    _parse_one(text, SHIPPED_FILE, prices, volumes)
    return PriceSeries(prices, volumes, "3YP SSPSBPNIV 2016-2019 (Elexon)")


def _subset(series: PriceSeries, start: datetime, end: datetime, source: str) -> PriceSeries:
    keep = [t for t in series.prices if start <= t < end]
    return PriceSeries(
        {t: series.prices[t] for t in keep},
        {t: series.volumes[t] for t in keep if t in series.volumes},
        source,
    )


def shipped_month(name: str) -> PriceSeries:
    """A shipped month by name (``YYYY-MM``): its settlement days' periods."""
    if name not in shipped_months():
        choices = ", ".join(shipped_months())
        raise ValueError(f"no shipped prices for {name!r}; choose one of {choices}")
    year, month = (int(x) for x in name.split("-"))
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return _subset(
        _shipped(),
        SettlementPeriod(first, 1).start,
        SettlementPeriod(nxt, 1).start,
        f"GB imbalance prices and NIV of {name} (Elexon, via 3YP)",
    )


@cache
def january_2024() -> PriceSeries:
    """The January 2024 prices and NIV shipped with the markets package."""
    data = resources.files("reconciler.markets") / "data"
    prices: dict[datetime, float] = {}
    volumes: dict[datetime, float] = {}
    for name in ("elexon_imbalance_price_2024_01.csv", "elexon_imbalance_volume_2024_01.csv"):
        _parse_one((data / name).read_text(encoding="utf-8"), name, prices, volumes)
    return PriceSeries(prices, volumes, "GB imbalance prices and NIV of January 2024 (BMRS)")


def named(name: str) -> PriceSeries:
    """A shipped series by name: ``january-2024`` or a shipped month ``YYYY-MM``."""
    return january_2024() if name == "january-2024" else shipped_month(name)


def period_starts(start: datetime, end: datetime) -> list[datetime]:
    """UTC starts of the settlement periods in [start, end) (both on period boundaries)."""
    out: list[datetime] = []
    t = start.astimezone(UTC)
    while t < end:
        out.append(t)
        t += PERIOD
    return out


__all__ = [
    "PriceFileError",
    "PriceSeries",
    "january_2024",
    "named",
    "parse_prices",
    "period_starts",
    "shipped_month",
    "shipped_months",
]
