"""Signals: the in-memory feeds, the January 2024 replay and the snapshot for decide()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.control.core import decide
from reconciler.control.periods import period_at
from reconciler.control.signals import FeedSignals, signals_at
from reconciler.control.types import AxleStep, ControlState, PeriodValue, Signals
from reconciler.markets.memory import MemoryAxleFeed, MemoryImbalanceFeed, ReplayImbalanceFeed
from tests.control.helpers import make_site, observe, utc

DATA = Path(__file__).resolve().parents[2] / "reconciler" / "markets" / "data"


def test_memory_imbalance_feed_serves_what_was_set() -> None:
    feed = MemoryImbalanceFeed()
    at = utc(2024, 1, 10, 12, 10)
    assert signals_at(at, imbalance=feed) == Signals()
    feed.set(period_at(at), 12.5, -300.0)
    snap = signals_at(at, imbalance=feed)
    assert snap.imbalance_price == PeriodValue(period_at(at), 12.5)
    assert snap.imbalance_volume == PeriodValue(period_at(at), -300.0)
    feed.set_volume(None)
    assert signals_at(at, imbalance=feed).imbalance_volume is None


def test_replay_serves_january_2024_by_period() -> None:
    feed = ReplayImbalanceFeed.january_2024(wrap=False)
    # first rows of the shipped CSVs: 2024-01-01 00:00 UTC price 9.0, volume 103.3515;
    # 00:30 price 10.0, volume 197.5352
    at = utc(2024, 1, 1, 0, 10)
    assert feed.imbalance_price(at) == PeriodValue(period_at(at), 9.0)
    assert feed.imbalance_volume(at) == PeriodValue(period_at(at), 103.3515)
    at = utc(2024, 1, 1, 0, 45)
    assert feed.imbalance_price(at) == PeriodValue(period_at(at), 10.0)
    # outside the history without wrap: nothing
    assert feed.imbalance_price(utc(2024, 3, 1)) is None


def test_replay_publish_delay_serves_the_previous_period_early() -> None:
    feed = ReplayImbalanceFeed.january_2024(wrap=False, publish_delay_s=120)
    at = utc(2024, 1, 1, 0, 31)  # 60 s into SP2: still serving SP1
    assert feed.imbalance_price(at) == PeriodValue(period_at(utc(2024, 1, 1, 0, 0)), 9.0)
    at = utc(2024, 1, 1, 0, 33)
    assert feed.imbalance_price(at) == PeriodValue(period_at(at), 10.0)


def test_replay_wraps_history_onto_any_date_with_that_dates_period() -> None:
    feed = ReplayImbalanceFeed.january_2024(wrap=True)
    # 31 days of history: 2024-02-01 00:10 maps onto 2024-01-01 00:10
    at = utc(2024, 2, 1, 0, 10)
    assert feed.imbalance_price(at) == PeriodValue(period_at(at), 9.0)
    # every instant of a day far away gets a value for its own period
    day = datetime(2026, 11, 25, tzinfo=UTC)
    for half_hours in range(48):
        t = day + timedelta(minutes=30 * half_hours + 5)
        value = feed.imbalance_volume(t)
        assert value is not None and value.period == period_at(t)


def test_replay_from_csv_and_bad_rows(tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    volumes = tmp_path / "v.csv"
    prices.write_text(
        "spUTCTime,spClockTime,price\n"
        "2024-06-01 10:00:00+00:00,2024-06-01 11:00:00+01:00,7.5\n"
        "2024-06-01 10:30:00+00:00,2024-06-01 11:30:00+01:00,\n"
    )
    volumes.write_text("spUTCTime,spClockTime,volume\n2024-06-01 10:00:00+00:00,x,-12\n")
    feed = ReplayImbalanceFeed.from_csv(prices, volumes)
    at = utc(2024, 6, 1, 10, 20)
    assert feed.imbalance_price(at) == PeriodValue(period_at(at), 7.5)
    assert feed.imbalance_volume(at) == PeriodValue(period_at(at), -12.0)
    assert feed.imbalance_price(utc(2024, 6, 1, 10, 40)) is None  # blank value skipped
    naive = tmp_path / "n.csv"
    naive.write_text("spUTCTime,spClockTime,price\n2024-06-01 10:00:00,x,1\n")
    with pytest.raises(ValueError, match="no UTC offset"):
        ReplayImbalanceFeed.from_csv(naive, volumes)


def test_shipped_data_has_attribution() -> None:
    text = (DATA / "SOURCES.md").read_text()
    assert "Contains BMRS data © Elexon Limited copyright and database right 2024" in text
    for name in ("elexon_imbalance_price_2024_01.csv", "elexon_imbalance_volume_2024_01.csv"):
        assert name in text
        assert len((DATA / name).read_text().splitlines()) == 1 + 31 * 48


def test_axle_feed_and_feed_signals_drive_decide() -> None:
    at = utc(2024, 1, 10, 12, 10)
    axle = MemoryAxleFeed()
    source = FeedSignals(axle=axle)
    site = make_site([{"mode": "axle"}])
    assert (
        decide(site, at, observe(at, 500, 0), source.signals_at(at), ControlState()).target_kw == 0
    )
    axle.append(AxleStep(utc(2024, 1, 10, 12), utc(2024, 1, 10, 12, 30), "charge_max"))
    d = decide(site, at, observe(at, 500, 0), source.signals_at(at), ControlState())
    assert d.target_kw == -200  # full charge, cut by the 200 kW import limit
    assert d.bound_by == ("site_import_kw",)
    # ended steps are not served
    assert axle.axle_steps(utc(2024, 1, 10, 12, 30)) == []
    axle.set_steps([])
    assert source.signals_at(at).axle_steps == ()
