"""api.red_bands: a site's DUoS red-band windows (recorded with its identity) as the
occurrences a dashboard joins readings against, in the site's local time."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.agent.telemetry import red_bands
from reconciler.config import load_site

SITES = Path(__file__).resolve().parents[2] / "sites"


def _bands(url: str, bands: list[dict[str, Any]] | None, since: str, until: str) -> list[str]:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO flux.sites (site_id, timezone, red_bands)"
            " VALUES ('s', 'Europe/London', %s)"
            " ON CONFLICT (site_id) DO UPDATE SET red_bands = excluded.red_bands",
            (None if bands is None else json.dumps(bands),),
        )
        rows = conn.execute(
            "SELECT starts, ends FROM api.red_bands('s', %s, %s)", (since, until)
        ).fetchall()
    return [f"{a.astimezone(UTC):%m-%d %H:%M}-{b.astimezone(UTC):%m-%d %H:%M}" for a, b in rows]


def test_hmce_weekday_band_in_winter_and_summer_time(migrated_url: str) -> None:
    bands = red_bands(load_site(SITES / "hmce.yaml"))
    assert bands == [
        {"days": [1, 2, 3, 4, 5], "from": None, "to": None, "start": "17:00", "end": "19:00"}
    ]
    # Fri 2024-03-29 (GMT), Sat, Sun 31 (clocks go forward), Mon 2024-04-01 (BST).
    got = _bands(migrated_url, bands, "2024-03-29T00:00Z", "2024-04-02T00:00Z")
    assert got == ["03-29 17:00-03-29 19:00", "04-01 16:00-04-01 18:00"]


def test_a_band_past_midnight_starts_on_its_day(migrated_url: str) -> None:
    # Saturdays 23:00 to 01:00: the Sunday-morning hour belongs to Saturday's window.
    band = [{"days": [6], "from": None, "to": None, "start": "23:00", "end": "01:00"}]
    got = _bands(migrated_url, band, "2024-01-07T00:30Z", "2024-01-14T00:00Z")
    assert got == ["01-06 23:00-01-07 01:00", "01-13 23:00-01-14 01:00"]


def test_dates_limit_the_days_and_24_00_ends_the_day(migrated_url: str) -> None:
    band = [
        {
            "days": [1, 2, 3, 4, 5, 6, 7],
            "from": "2024-01-02",
            "to": "2024-01-03",
            "start": "22:00",
            "end": "24:00",
        }
    ]
    got = _bands(migrated_url, band, "2024-01-01T00:00Z", "2024-01-06T00:00Z")
    assert got == ["01-02 22:00-01-03 00:00", "01-03 22:00-01-04 00:00"]


@pytest.mark.parametrize("bands", [None, []])
def test_a_site_without_bands_has_none(migrated_url: str, bands: list[Any] | None) -> None:
    assert _bands(migrated_url, bands, "2024-01-01T00:00Z", "2024-01-08T00:00Z") == []
