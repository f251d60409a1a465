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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


def elexon_attribution(first_year: int, last_year: int) -> str:
    """The line Elexon's BMRS licence asks for wherever its data of these years is shown."""
    years = str(first_year) if first_year == last_year else f"{first_year}-{last_year}"
    return f"Contains BMRS data © Elexon Limited copyright and database right {years}."


@dataclass(frozen=True)
class PriceSeries:
    """Imbalance price (p/kWh) and NIV (MWh, + short) by UTC settlement-period start."""

    prices: Mapping[datetime, float]
    volumes: Mapping[datetime, float]
    source: str
    #: Settled prices (p/kWh by UTC period start) from before the first period: never
    #: played, only what a planner would have known when the series starts.
    before: Mapping[datetime, float] = field(default_factory=dict)

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

    @property
    def attribution(self) -> str:
        """Elexon's attribution line for the years the series covers."""
        return elexon_attribution(self.first.year, (self.end - PERIOD).year)

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

    def known_before(self, start: datetime, days: float) -> list[tuple[datetime, float]]:
        """The settled prices of the ``days`` before ``start`` (period start, p/kWh), in
        time order: the series' own periods and ``before``, none at or after ``start``,
        so a forecast seeded with them never reads what the run will play."""
        since = start - timedelta(days=days)
        known = {**self.before, **self.prices}
        return sorted((t, p) for t, p in known.items() if since <= t < start)

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


@dataclass
class _Table:
    """A price file's rows as read: columns by normalised header, the non-empty body rows
    with their line numbers, and where the values go."""

    path: str
    cols: dict[str, int]
    body: list[tuple[int, list[str]]]
    prices: dict[datetime, float]
    volumes: dict[datetime, float]

    def col(self, *names: str) -> int | None:
        for n in names:
            if n in self.cols:
                return self.cols[n]
        return None

    def cell(self, row: list[str], i: int, line: int, field: str) -> str:
        if i >= len(row):
            raise PriceFileError(
                self.path, line, field, f"the row has {len(row)} columns, no {field}"
            )
        return row[i]

    def num(self, row: list[str], i: int, line: int, field: str) -> float:
        return _number(self.cell(row, i, line, field), self.path, line, field)

    def optional(self, row: list[str], i: int | None, line: int, field: str) -> float | None:
        """A number in a column that may be absent or empty."""
        if i is None or not self.cell(row, i, line, field).strip():
            return None
        return _number(row[i], self.path, line, field)

    def period(self, row: list[str], line: int, date_col: str, period_col: str) -> datetime:
        """The start of a row's settlement period from its date and number columns."""
        day_text = self.cell(row, self.cols[_norm(date_col)], line, date_col)
        day = _settlement_date(day_text, self.path, line, date_col)
        number = self.cell(row, self.cols[_norm(period_col)], line, period_col)
        return _period_start(day, number, self.path, line, period_col)

    def instant(self, row: list[str], column: str, line: int) -> datetime:
        text = self.cell(row, self.cols[_norm(column)], line, column)
        return _instant(text, self.path, line, column)

    def fail(self, message: str) -> PriceFileError:
        return PriceFileError(self.path, 1, None, message)


def _sspsbpniv(t: _Table) -> None:
    """Elexon's SSPSBPNIV file: £/MWh, the main price SBP when the system was short."""
    ssp = t.col("system sell price(£/mwh)", "ssp")
    sbp = t.col("system buy price(£/mwh)", "sbp")
    niv = t.col("net imbalance volume(mwh)", "niv")
    if ssp is None or sbp is None:
        raise t.fail("no System Sell/Buy Price(£/MWh) columns")
    for n, r in t.body:
        at = t.period(r, n, "Settlement Date", "Settlement Period")
        sell = t.num(r, ssp, n, "System Sell Price")
        buy = t.num(r, sbp, n, "System Buy Price")
        volume = t.optional(r, niv, n, "Net Imbalance Volume")
        if volume is not None:
            _put(t.volumes, at, volume, t.path, n, "Net Imbalance Volume")
        main = buy if volume is not None and volume > 0 else sell
        _put(t.prices, at, main / 10.0, t.path, n, "Settlement Period")


def _bmrs(t: _Table) -> None:
    """BMRS as the API writes it: one row per period (and per price category, B1770)."""
    amount, category = t.col("imbalancepriceamount"), t.col("pricecategory")
    quantity = t.col("imbalancequantitymaw")
    if amount is None and quantity is None:
        raise t.fail("neither imbalancePriceAmount (B1770) nor imbalanceQuantityMAW (B1780)")
    by_cat: dict[datetime, dict[str, float]] = {}
    line_of: dict[datetime, int] = {}
    for n, r in t.body:
        at = t.period(r, n, "settlementDate", "settlementPeriod")
        if quantity is not None:
            q = t.num(r, quantity, n, "imbalanceQuantityMAW")
            _put(t.volumes, at, q, t.path, n, "settlementPeriod")
        if amount is None:
            continue
        cat = t.cell(r, category, n, "priceCategory").strip() if category is not None else ""
        if cat in by_cat.setdefault(at, {}):
            twice = f"a second {cat or 'price'} for {at.isoformat()}"
            raise PriceFileError(t.path, n, "priceCategory", twice)
        by_cat[at][cat] = t.num(r, amount, n, "imbalancePriceAmount")
        line_of[at] = n
    for at, cats in by_cat.items():
        price = _main_price(cats) / 10.0
        _put(t.prices, at, price, t.path, line_of[at], "imbalancePriceAmount")


def _pivoted(t: _Table) -> None:
    """ElexonDataPortal's pivoted B1770 / B1780: a local_datetime per period."""
    excess, insufficient = t.col("excess balance"), t.col("insufficient balance")
    quantity = t.col("imbalancequantitymaw")
    if (excess is None or insufficient is None) and quantity is None:
        raise t.fail(
            "a local_datetime file needs Excess/Insufficient balance or imbalanceQuantityMAW"
        )
    for n, r in t.body:
        at = t.instant(r, "local_datetime", n)
        if quantity is not None:
            q = t.num(r, quantity, n, "imbalanceQuantityMAW")
            _put(t.volumes, at, q, t.path, n, "local_datetime")
        if excess is not None and insufficient is not None:
            cats = {
                "Excess balance": t.num(r, excess, n, "Excess balance"),
                "Insufficient balance": t.num(r, insufficient, n, "Insufficient balance"),
            }
            _put(t.prices, at, _main_price(cats) / 10.0, t.path, n, "local_datetime")


def _sputc(t: _Table) -> None:
    """The shipped January 2024 shape: p/kWh or MWh already, one file per series."""
    target, field = (t.prices, "price") if "price" in t.cols else (t.volumes, "volume")
    if field not in t.cols:
        raise t.fail("a spUTCTime file needs a price or volume column")
    for n, r in t.body:
        value = t.optional(r, t.cols[field], n, field)
        if value is not None:
            _put(target, t.instant(r, "spUTCTime", n), value, t.path, n, "spUTCTime")


def _plain(t: _Table) -> None:
    """time,price_p_per_kwh[,niv_mwh]."""
    p, niv = t.cols["price_p_per_kwh"], t.col("niv_mwh")
    for n, r in t.body:
        at = t.instant(r, "time", n)
        _put(t.prices, at, t.num(r, p, n, "price_p_per_kwh"), t.path, n, "time")
        volume = t.optional(r, niv, n, "niv_mwh")
        if volume is not None:
            _put(t.volumes, at, volume, t.path, n, "time")


#: Each shape by the columns that name it, in the order they are tried.
_SHAPES: tuple[tuple[tuple[str, ...], Callable[[_Table], None]], ...] = (
    (("settlement date", "settlement period"), _sspsbpniv),
    (("settlementdate", "settlementperiod"), _bmrs),
    (("local_datetime",), _pivoted),
    (("sputctime",), _sputc),
    (("time", "price_p_per_kwh"), _plain),
)


def _parse_one(
    text: str, path: str, prices: dict[datetime, float], volumes: dict[datetime, float]
) -> None:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None:
        raise PriceFileError(path, 1, None, "the file is empty")
    cols = {_norm(h): i for i, h in enumerate(header)}
    body = [(n, r) for n, r in enumerate(rows, start=2) if r and any(c.strip() for c in r)]
    table = _Table(path, cols, body, prices, volumes)
    for names, read in _SHAPES:
        if all(name in cols for name in names):
            read(table)
            return
    raise table.fail(
        "not a known price file; expected the SSPSBPNIV file (Settlement Date, Settlement "
        "Period, System Sell/Buy Price, Net Imbalance Volume), BMRS B1770/B1780, or a CSV "
        "with time,price_p_per_kwh[,niv_mwh]"
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


#: Days of shipped prices before a shipped month kept as its ``before`` (the longest
#: history an optimise entry may ask for).
HISTORY_BEFORE_DAYS = 90


def _subset(series: PriceSeries, start: datetime, end: datetime, source: str) -> PriceSeries:
    keep = [t for t in series.prices if start <= t < end]
    since = start - timedelta(days=HISTORY_BEFORE_DAYS)
    return PriceSeries(
        {t: series.prices[t] for t in keep},
        {t: series.volumes[t] for t in keep if t in series.volumes},
        source,
        before={t: p for t, p in series.prices.items() if since <= t < start},
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
