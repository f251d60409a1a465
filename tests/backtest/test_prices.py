"""Price files in each shape Elexon publishes, clock-change days, and bad rows."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.backtest.prices import (
    PriceFileError,
    january_2024,
    named,
    parse_prices,
    shipped_month,
    shipped_months,
)
from reconciler.control.periods import SettlementPeriod, periods_in_day

SSPSBPNIV_HEADER = (
    "Settlement Date,Settlement Period,System Sell Price(£/MWh),System Buy Price(£/MWh),"
    "Net Imbalance Volume(MWh)\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sspsbpniv_day(day: date, n: int | None = None) -> str:
    count = periods_in_day(day) if n is None else n
    return "".join(
        f"{day:%d/%m/%Y},{sp},{sp}.5,{sp}.5,{'-' if sp % 2 else ''}{sp}.25\n"
        for sp in range(1, count + 1)
    )


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def test_sspsbpniv_clock_change_days_have_46_and_50_periods(tmp_path: Path) -> None:
    spring, autumn = date(2018, 3, 25), date(2018, 10, 28)
    text = SSPSBPNIV_HEADER + sspsbpniv_day(spring) + sspsbpniv_day(autumn)
    series = parse_prices(write(tmp_path, "sspsbpniv.csv", text))
    assert len(series.prices) == 46 + 50
    # Spring: local midnight is 00:00 UTC; the day ends 23:00 UTC.
    assert series.first == utc(2018, 3, 25)
    assert max(t for t in series.prices if t < utc(2018, 4, 1)) == utc(2018, 3, 25, 22, 30)
    # Autumn: local midnight is 23:00 UTC the day before; period 50 starts 23:30 UTC.
    assert utc(2018, 10, 27, 23) in series.prices
    assert series.prices[utc(2018, 10, 27, 23)] == pytest.approx(0.15)  # SP1: £1.5/MWh
    assert series.prices[utc(2018, 10, 28, 23, 30)] == pytest.approx(5.05)  # SP50
    assert series.volumes[utc(2018, 10, 28, 23, 30)] == pytest.approx(50.25)
    assert series.volumes[utc(2018, 10, 27, 23)] == pytest.approx(-1.25)
    # Every period of both days is there, contiguous.
    assert series.covers(utc(2018, 3, 25), utc(2018, 3, 25, 23))
    assert series.covers(utc(2018, 10, 27, 23), utc(2018, 10, 29))


def test_sspsbpniv_main_price_when_sell_and_buy_differ(tmp_path: Path) -> None:
    text = SSPSBPNIV_HEADER + "01/01/2015,1,20,60,100\n01/01/2015,2,20,60,-100\n"
    series = parse_prices(write(tmp_path, "dual.csv", text))
    assert series.prices[utc(2015, 1, 1)] == pytest.approx(6.0)  # short: SBP
    assert series.prices[utc(2015, 1, 1, 0, 30)] == pytest.approx(2.0)  # long: SSP


@pytest.mark.parametrize(
    ("row", "field", "says"),
    [
        ("25/03/2018,47,1,1,1", "Settlement Period", "period 47 does not exist on 2018-03-25"),
        ("25/03/2018,x,1,1,1", "Settlement Period", "not a settlement period number"),
        ("32/03/2018,1,1,1,1", "Settlement Date", "is not a date"),
        ("25/03/2018,1,abc,1,1", "System Sell Price", "'abc' is not a number"),
        ("25/03/2018,1,1,nan,1", "System Buy Price", "not a finite number"),
        ("25/03/2018,1,1", "System Buy Price", "the row has 3 columns"),
    ],
)
def test_bad_sspsbpniv_rows_name_file_line_and_field(
    tmp_path: Path, row: str, field: str, says: str
) -> None:
    text = SSPSBPNIV_HEADER + "25/03/2018,1,1,1,1\n" + row + "\n"
    if row.startswith("25/03/2018,1,"):
        text = SSPSBPNIV_HEADER + "25/03/2018,2,1,1,1\n" + row + "\n"
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(PriceFileError) as err:
        parse_prices(path)
    assert str(err.value).startswith(f"{path}:3: {field}: ")
    assert says in str(err.value)


def test_a_period_given_twice_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, "twice.csv", SSPSBPNIV_HEADER + "01/01/2018,1,1,1,1\n01/01/2018,1,2,2,2\n"
    )
    with pytest.raises(PriceFileError, match=r"twice.csv:3: .*a second value"):
        parse_prices(path)


def test_bmrs_pair_as_elexondataportal_pivots_it(tmp_path: Path) -> None:
    # The autumn clock change: 01:00 and 01:30 local come twice, +01:00 then +00:00.
    times = [
        "2018-10-28 00:00:00+01:00",
        "2018-10-28 00:30:00+01:00",
        "2018-10-28 01:00:00+01:00",
        "2018-10-28 01:30:00+01:00",
        "2018-10-28 01:00:00+00:00",
        "2018-10-28 01:30:00+00:00",
    ]
    prices = "local_datetime,Excess balance,Insufficient balance\n" + "".join(
        f"{t},{10 * (i + 1)},{10 * (i + 1)}\n" for i, t in enumerate(times)
    )
    volumes = "local_datetime,imbalanceQuantityMAW\n" + "".join(
        f"{t},{i - 2.5}\n" for i, t in enumerate(times)
    )
    series = parse_prices(
        write(tmp_path, "B1770.csv", prices), write(tmp_path, "B1780.csv", volumes)
    )
    starts = sorted(series.prices)
    assert starts == [utc(2018, 10, 27, 23) + i * timedelta(minutes=30) for i in range(6)]
    assert [series.prices[t] for t in starts] == pytest.approx([1, 2, 3, 4, 5, 6])
    assert series.volumes[starts[-1]] == pytest.approx(2.5)
    # Each period is the settlement period the date and number give.
    assert starts[4] == SettlementPeriod(date(2018, 10, 28), 5).start


def test_b1780_alone_has_no_prices(tmp_path: Path) -> None:
    path = write(
        tmp_path, "B1780.csv", "local_datetime,imbalanceQuantityMAW\n2018-01-01 00:00:00+00:00,1\n"
    )
    with pytest.raises(PriceFileError, match="needs its B1770 file beside it"):
        parse_prices(path)


def test_bmrs_pair_as_the_api_writes_it(tmp_path: Path) -> None:
    b1770 = (
        "settlementDate,settlementPeriod,priceCategory,imbalancePriceAmount\n"
        "2018-03-25,46,Excess balance,42.0\n"
        "2018-03-25,46,Insufficient balance,42.0\n"
    )
    b1780 = "settlementDate,settlementPeriod,imbalanceQuantityMAW\n2018-03-25,46,-12.5\n"
    series = parse_prices(write(tmp_path, "b1770.csv", b1770), write(tmp_path, "b1780.csv", b1780))
    assert series.prices == {utc(2018, 3, 25, 22, 30): pytest.approx(4.2)}
    assert series.volumes == {utc(2018, 3, 25, 22, 30): -12.5}
    bad = write(tmp_path, "b.csv", b1770.replace("2018-03-25,46,Excess", "2018-03-25,47,Excess"))
    with pytest.raises(PriceFileError, match=r"b.csv:2: settlementPeriod: period 47"):
        parse_prices(bad)


def test_plain_csv_with_and_without_niv_and_gzipped(tmp_path: Path) -> None:
    text = "time,price_p_per_kwh,niv_mwh\n2024-07-01T00:00Z,5.5,-10\n2024-07-01T01:30:00+01:00,6,\n"
    series = parse_prices(write(tmp_path, "plain.csv", text))
    assert series.prices == {utc(2024, 7, 1): 5.5, utc(2024, 7, 1, 0, 30): 6.0}
    assert series.volumes == {utc(2024, 7, 1): -10.0}
    gz = tmp_path / "plain.csv.gz"
    gz.write_bytes(gzip.compress(b"time,price_p_per_kwh\n2024-07-01 00:00,5.5\n"))
    assert parse_prices(gz).prices == {utc(2024, 7, 1): 5.5}  # no offset: UTC
    for row, says in (
        ("2024-07-01T00:10Z,1", "not the start of a half-hour"),
        ("yesterday,1", "not an ISO 8601 time"),
        ("2024-07-01T00:00Z,", "'' is not a number"),
    ):
        path = write(tmp_path, "p.csv", f"time,price_p_per_kwh\n{row}\n")
        with pytest.raises(PriceFileError, match=f"p.csv:2: .*{says}"):
            parse_prices(path)


def test_unknown_shapes_and_missing_files_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"x.csv:1: not a known price file; expected"):
        parse_prices(write(tmp_path, "x.csv", "a,b\n1,2\n"))
    with pytest.raises(PriceFileError, match="cannot read"):
        parse_prices(tmp_path / "absent.csv")


def test_shipped_months_cover_their_settlement_days() -> None:
    months = shipped_months()
    assert months[0] == "2016-07" and months[-1] == "2019-01" and len(months) == 31
    october = shipped_month("2018-10")
    # 31 days, one of them 50 periods long.
    assert len(october.prices) == 31 * 48 + 2 == len(october.volumes)
    assert october.first == SettlementPeriod(date(2018, 10, 1), 1).start
    assert october.end == SettlementPeriod(date(2018, 11, 1), 1).start
    march = named("2018-03")
    assert len(march.prices) == 31 * 48 - 2
    jan = january_2024()
    assert len(jan.prices) == 31 * 48 and named("january-2024") is jan
    with pytest.raises(ValueError, match="no shipped prices for '2020-01'"):
        shipped_month("2020-01")


def test_a_shipped_month_knows_the_month_before_it_and_never_its_own_future(
    tmp_path: Path,
) -> None:
    august = shipped_month("2016-08")
    first = SettlementPeriod(date(2016, 8, 1), 1).start
    seed = august.known_before(first, 14)
    # The fortnight before: July's last 14 days, every period, all from before the month.
    assert len(seed) == 14 * 48
    assert seed[0][0] == first - timedelta(days=14) and seed[-1][0] == first - timedelta(minutes=30)
    july = shipped_month("2016-07")
    assert all(july.price(t) == p for t, p in seed)
    # Mid-month: July's tail and August's own days up to the start, nothing from then on.
    mid = SettlementPeriod(date(2016, 8, 10), 1).start
    seed = august.known_before(mid, 14)
    assert len(seed) == 14 * 48 and max(t for t, _ in seed) < mid
    assert sum(t >= first for t, _ in seed) == 9 * 48
    # A file knows nothing before its own first period.
    day = date(2024, 3, 4)
    one_day = parse_prices(write(tmp_path, "day.csv", SSPSBPNIV_HEADER + sspsbpniv_day(day)))
    assert one_day.known_before(one_day.first, 14) == []
    assert len(one_day.known_before(one_day.first + timedelta(hours=2), 14)) == 4
