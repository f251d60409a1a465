"""Load and solar files, and the shipped year of profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.backtest.profiles import (
    ProfileFileError,
    parse_profile,
    shipped_year,
    site_profiles,
)


def utc(m: int, d: int, h: int = 0, mi: int = 0, y: int = 2024) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_five_minute_kwh_becomes_half_hourly_kw_per_home(tmp_path: Path) -> None:
    start = utc(7, 1)
    rows = [(start + i * timedelta(minutes=5), 0.5 if i < 6 else 1.0) for i in range(12)]
    text = "time,kwh\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows)
    curve = parse_profile(write(tmp_path, text), per=2.0)  # the file measures 2 homes
    # 0.5 kWh per 5 minutes is 6 kW; over two homes 3 kW each; then 6 kW each.
    assert curve.start == start
    assert curve.kw == pytest.approx((3.0, 6.0))


def test_half_hourly_kw_and_the_london_households_layout(tmp_path: Path) -> None:
    kw = parse_profile(write(tmp_path, "timestamp,kw\n2024-01-01 00:00,2\n2024-01-01 00:30,4\n"))
    assert kw.kw == (2.0, 4.0)
    lcl = parse_profile(
        write(
            tmp_path,
            "LCLid,tstp,energy(kWh/hh)\nMAC1,2013-01-01 00:00:00, 0.219 \n"
            "MAC1,2013-01-01 00:30:00, 0.241 \n",
        )
    )
    assert lcl.kw == pytest.approx((0.438, 0.482))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("time,kw\n2024-01-01 00:00,1\n2024-01-01 00:20,1\n", ":3: time: rows 0:20:00 apart"),
        ("time,kw\n2024-01-01 00:00,1\n2024-01-01 00:30,1\n2024-01-01 01:30,1\n", ":4: time:"),
        ("time,kw\n2024-01-01 00:00,1\n2024-01-01 00:30,-1\n", ":3: kw: -1.0 is negative"),
        ("time,kw\n2024-01-01 00:00,1\n2024-01-01 00:30,lots\n", ":3: kw: 'lots' is not"),
        ("time,kw\nnoon,1\n2024-01-01 00:30,1\n", ":2: time: 'noon' is not an ISO 8601"),
        ("when,kw\n2024-01-01 00:00,1\n", ":1: no time column"),
        ("time,watts\n2024-01-01 00:00,1\n", ":1: no value column"),
        (
            "time,kw\n2024-01-01 00:10,1\n2024-01-01 00:20,1\n2024-01-01 00:30,1\n",
            ":2: time: the first",
        ),
    ],
)
def test_bad_profile_files_name_file_line_and_field(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileFileError) as err:
        parse_profile(path)
    assert str(err.value).startswith(str(path))
    assert says in str(err.value)


def test_shipped_year_follows_the_month_of_the_run() -> None:
    jan = shipped_year(utc(1, 15), utc(1, 16))
    jul = shipped_year(utc(7, 15), utc(7, 16))
    jan_load, _ = jan.period_means([utc(1, 15, 12)], 1, 1)
    jul_load, jul_solar = jul.period_means([utc(7, 15, 12)], 1, 1)

    # A month's solar energy: July's is several times January's (real weather day to day).
    def month_kwh(m: int) -> float:
        first, last = utc(m, 1), utc(m, 31)
        starts = [
            first + i * timedelta(minutes=30)
            for i in range(int((last - first) / timedelta(minutes=30)))
        ]
        return sum(shipped_year(first, last).period_means(starts, 1, 1)[1]) / 2

    assert month_kwh(7) > 3 * month_kwh(1) > 0
    assert 0.1 < jul_load[0] < 5 and 0.1 < jan_load[0] < 5  # one home, kW
    # Another year's same day plays the same values; 29 February plays the 28th.
    other = shipped_year(utc(7, 15, y=2031), utc(7, 16, y=2031))
    assert other.period_means([utc(7, 15, 12, y=2031)], 1, 1) == (jul_load, jul_solar)
    leap = shipped_year(utc(2, 29), utc(3, 1))
    feb28 = shipped_year(utc(2, 28, y=2023), utc(3, 1, y=2023))
    assert leap.period_means([utc(2, 29, 12)], 1, 1) == feb28.period_means(
        [utc(2, 28, 12, y=2023)], 1, 1
    )


def test_period_means_are_the_mean_of_what_the_plant_plays(tmp_path: Path) -> None:
    profiles = shipped_year(utc(6, 1), utc(6, 2))
    starts = [utc(6, 1) + i * timedelta(minutes=30) for i in range(48)]
    load, solar = profiles.period_means(starts, 54, 210)
    for i, t in enumerate(starts):
        samples = [t + timedelta(seconds=s + 0.5) for s in range(1800)]
        fine_load = sum(profiles.load_per_home.at(s) for s in samples) / 1800 * 54
        fine_solar = sum(profiles.solar_per_kwp.at(s) for s in samples) / 1800 * 210
        assert load[i] == pytest.approx(fine_load, rel=1e-6, abs=1e-9)
        assert solar[i] == pytest.approx(fine_solar, rel=1e-6, abs=1e-9)


def test_user_files_replace_the_shipped_year(tmp_path: Path) -> None:
    load = write(tmp_path, "time,kw\n2024-07-01 00:00,10\n2024-07-01 00:30,10\n", "load.csv")
    profiles = site_profiles(utc(7, 1), utc(7, 2), load=load, load_homes=5)
    loads, _ = profiles.period_means([utc(7, 1, 3)], 1, 1)
    assert loads == [pytest.approx(2.0)]  # 10 kW over 5 homes, repeated past the file's end
    assert "load from" in profiles.source and "shipped year" in profiles.source
