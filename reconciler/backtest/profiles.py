"""Load and solar for a backtest: the shipped year, or the user's own files.

The simulator's plant takes one home's load and one kWp's solar as
:class:`~reconciler.sim.curves.HalfHourly` curves and scales them by the site's ``homes``
and ``solar_kwp``. :class:`SiteProfiles` holds such a pair for the days of a run and gives
the optimum the same curves' mean power per settlement period (kW).

The shipped year (``data/year_per_home_per_kwp.csv.gz``, see ``data/SOURCES.md``) has
one value per UTC half-hour of a 365-day year: January is the community microgrid's
January 2023 (the simulator's own default), February to December are the mean of 11 London
households (Low Carbon London, 2013) scaled to January's level, with PVGIS solar for 1 kWp
in Oxfordshire (2016). A run on any date takes the same month, day and UTC time of day
(29 February takes the 28th), so a July run sees July load and solar.

User files (``--load FILE``, ``--solar FILE``): CSV with a time column (``time``,
``utctime``, ``tstp``, ``timestamp`` or ``local_datetime``; ISO 8601, no offset = UTC) and
one value column, ``kw`` (mean power) or ``kwh`` (``energy``, ``energy(kWh/hh)``: energy per
row's interval). Rows are regular, every 30 minutes or a divisor of it (e.g. 5 minutes), and
are averaged into half-hours. The file measures ``homes`` homes or ``kwp`` kWp (1 unless
told) and is divided by that; a run outside the file's span repeats it.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path

from reconciler.backtest.prices import PriceFileError
from reconciler.sim.curves import HalfHourly

HALF_HOUR = timedelta(minutes=30)
YEAR_FILE = "year_per_home_per_kwp.csv.gz"
TIME_COLUMNS = ("time", "utctime", "tstp", "timestamp", "local_datetime")
KW_COLUMNS = ("kw", "power_kw", "load_kw", "solar_kw")
KWH_COLUMNS = ("kwh", "energy", "energy(kwh/hh)", "energy_kwh")


class ProfileFileError(PriceFileError):
    """A load or solar file that cannot be read (file:line: field: message)."""


@dataclass(frozen=True)
class SiteProfiles:
    """One home's load and one kWp's solar (kW) over a run, as the plant plays them."""

    load_per_home: HalfHourly
    solar_per_kwp: HalfHourly
    source: str

    def period_means(
        self, starts: list[datetime], homes: float, kwp: float
    ) -> tuple[list[float], list[float]]:
        """The site's mean load and solar (kW) over each half-hour from ``starts``.

        Exact for the plant's curve: it is linear between half-hour midpoints, so each
        quarter-hour piece averages to its own midpoint's value.
        """
        q = timedelta(minutes=7.5)
        load, solar = [], []
        for t in starts:
            a, b = t + q, t + 3 * q
            load.append(homes * (self.load_per_home.at(a) + self.load_per_home.at(b)) / 2.0)
            solar.append(kwp * (self.solar_per_kwp.at(a) + self.solar_per_kwp.at(b)) / 2.0)
        return load, solar


def _floor_half_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 30, second=0, microsecond=0)


@cache
def _year() -> dict[str, tuple[float, float]]:
    data = resources.files("reconciler.backtest") / "data" / YEAR_FILE
    text = gzip.decompress(data.read_bytes()).decode("utf-8")
    rows = csv.reader(io.StringIO(text))
    next(rows)
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


def _key(at: datetime) -> str:
    day = 28 if (at.month, at.day) == (2, 29) else at.day
    return f"{at.month:02d}-{day:02d}T{at.hour:02d}:{at.minute:02d}"


def shipped_year(start: datetime, end: datetime) -> SiteProfiles:
    """The shipped year's load and solar for [start, end) (a half-hour either side, so the
    curves interpolate into the neighbouring days)."""
    first = _floor_half_hour(start) - HALF_HOUR
    year = _year()
    load: list[float] = []
    solar: list[float] = []
    t = first
    while t <= end + HALF_HOUR:
        lv, sv = year[_key(t)]
        load.append(lv)
        solar.append(sv)
        t += HALF_HOUR
    return SiteProfiles(
        HalfHourly(first, tuple(load)),
        HalfHourly(first, tuple(solar)),
        "shipped year (January: community microgrid 2023; February-December: "
        "London households 2013 and PVGIS solar)",
    )


def _text(path: Path | str) -> str:
    """The file's text (gzip or not)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ProfileFileError(name, None, None, f"cannot read: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProfileFileError(name, None, None, "not a UTF-8 text file") from None


def _columns(name: str, header: list[str]) -> tuple[int, int, bool]:
    """The time column, the value column and whether the values are kW (else kWh)."""
    tcol = next((header.index(c) for c in TIME_COLUMNS if c in header), None)
    if tcol is None:
        raise ProfileFileError(
            name, 1, None, f"no time column; name one of {', '.join(TIME_COLUMNS)}"
        )
    kw = next((header.index(c) for c in KW_COLUMNS if c in header), None)
    kwh = next((header.index(c) for c in KWH_COLUMNS if c in header), None)
    if kw is not None:
        return tcol, kw, True
    if kwh is not None:
        return tcol, kwh, False
    raise ProfileFileError(
        name,
        1,
        None,
        f"no value column; name it kw (mean power) or kwh (energy per row), "
        f"e.g. {', '.join(KW_COLUMNS + KWH_COLUMNS)}",
    )


def _row(
    name: str, n: int, r: list[str], header: list[str], tcol: int, vcol: int
) -> tuple[datetime, float]:
    """One row's instant (UTC) and value (>= 0)."""
    field = header[vcol]
    if len(r) <= max(tcol, vcol):
        raise ProfileFileError(name, n, field, f"the row has {len(r)} columns")
    text_t = r[tcol].strip().replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(text_t)
    except ValueError:
        raise ProfileFileError(
            name, n, header[tcol], f"{text_t!r} is not an ISO 8601 time"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    cell = r[vcol].strip()
    try:
        value = float(cell) if cell else 0.0
    except ValueError:
        raise ProfileFileError(name, n, field, f"{cell!r} is not a number") from None
    if value < 0:
        raise ProfileFileError(name, n, field, f"{value} is negative; give power drawn or made")
    return at, value


def _step(name: str, column: str, times: list[datetime], lines: list[int]) -> timedelta:
    """The rows' spacing: even, a divisor of 30 minutes, starting on a half-hour."""
    if len(times) < 2:
        raise ProfileFileError(name, None, None, "needs at least two rows")
    step = times[1] - times[0]
    if step <= timedelta(0) or HALF_HOUR % step:
        raise ProfileFileError(
            name, lines[1], column, f"rows {step} apart; use 30 minutes or a divisor of it"
        )
    for (a, b), n in zip(itertools.pairwise(times), lines[1:], strict=True):
        if b - a != step:
            raise ProfileFileError(
                name, n, column, f"{b.isoformat()} is not {step} after {a.isoformat()}"
            )
    if times[0] != _floor_half_hour(times[0]):
        raise ProfileFileError(name, lines[0], column, "the first row must start a half-hour")
    if len(times) % int(HALF_HOUR / step):
        raise ProfileFileError(name, None, None, "the last half-hour is incomplete")
    return step


def parse_profile(path: Path | str, per: float = 1.0) -> HalfHourly:
    """A load or solar file as mean kW per UTC half-hour, divided by ``per``
    (the homes or kWp it measures). Raises :class:`ProfileFileError`."""
    name = str(path)
    rows = csv.reader(io.StringIO(_text(path)))
    header = [h.strip().strip('"').lower() for h in next(rows, [])]
    tcol, vcol, is_kw = _columns(name, header)
    times: list[datetime] = []
    values: list[float] = []
    lines: list[int] = []
    for n, r in enumerate(rows, start=2):
        if r and any(c.strip() for c in r):
            at, value = _row(name, n, r, header, tcol, vcol)
            times.append(at)
            values.append(value)
            lines.append(n)
    step = _step(name, header[tcol], times, lines)
    per_slot = int(HALF_HOUR / step)
    hours = step.total_seconds() / 3600.0
    powers = values if is_kw else [v / hours for v in values]
    kw_half = tuple(
        sum(powers[i : i + per_slot]) / per_slot / per for i in range(0, len(powers), per_slot)
    )
    return HalfHourly(times[0], kw_half)


def site_profiles(
    start: datetime,
    end: datetime,
    *,
    load: Path | None = None,
    load_homes: float = 1.0,
    solar: Path | None = None,
    solar_kwp: float = 1.0,
) -> SiteProfiles:
    """The profiles of a run: the shipped year, with the user's files in their place."""
    year = shipped_year(start, end)
    lp = parse_profile(load, load_homes) if load is not None else year.load_per_home
    sp = parse_profile(solar, solar_kwp) if solar is not None else year.solar_per_kwp
    parts = [
        f"load from {load}" if load is not None else None,
        f"solar from {solar}" if solar is not None else None,
        year.source if load is None or solar is None else None,
    ]
    return SiteProfiles(lp, sp, ", ".join(p for p in parts if p is not None))
