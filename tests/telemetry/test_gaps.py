"""`flux db gaps`: missing minutes per device, from the readings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry.outbox import Outbox
from reconciler.telemetry.uploader import Uploader

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # a clock-change day: gaps are counted in UTC


def _at(minute: int, second: int = 0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second)


def _gaps(url: str, *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        cli, ["db", "gaps", "--database-url", url, "--site", "wlce", "--output", "json", *args]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, list)
    return data


def test_gaps_per_device(migrated_url: str, outbox: Outbox) -> None:
    # Battery: minutes 0..59 except 10..14 and 30; readings land a few seconds into a minute.
    outbox.add_bess_many(
        "wlce",
        "bess",
        [
            BatteryReading(_at(m, 7), 100.0, 0.0)
            for m in range(60)
            if m not in (10, 11, 12, 13, 14, 30)
        ],
    )
    # Site meter: minutes 0..39 complete.
    outbox.add_meter_many("wlce", "site", [MeterReading(_at(m), 1.0) for m in range(40)])
    outbox.add_meter_many("other", "site", [MeterReading(_at(m), 1.0) for m in (0, 5)])
    assert Uploader(outbox, migrated_url).drain().ok

    assert _gaps(migrated_url, "--until", _at(60).isoformat()) == [
        {"device": "bess", "start": _at(10).isoformat(), "end": _at(15).isoformat(), "minutes": 5},
        {"device": "bess", "start": _at(30).isoformat(), "end": _at(31).isoformat(), "minutes": 1},
        {"device": "site", "start": _at(40).isoformat(), "end": _at(60).isoformat(), "minutes": 20},
    ]
    # --until defaults to now: a silence that lasts until now is a gap (up to this minute).
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    trailing = [g for g in _gaps(migrated_url) if g["start"] == _at(60).isoformat()]
    assert len(trailing) == 1 and trailing[0]["device"] == "bess"
    assert datetime.fromisoformat(str(trailing[0]["end"])) >= before
    # With a window the whole window is expected: the meter stops at minute 40.
    window = _gaps(
        migrated_url,
        "--device",
        "site",
        "--since",
        _at(35).isoformat(),
        "--until",
        _at(60).isoformat(),
    )
    assert window == [
        {"device": "site", "start": _at(40).isoformat(), "end": _at(60).isoformat(), "minutes": 20}
    ]
    assert (
        _gaps(
            migrated_url,
            "--device",
            "bess",
            "--since",
            _at(15).isoformat(),
            "--until",
            _at(30).isoformat(),
        )
        == []
    )


def test_gaps_table_output_and_bad_window(migrated_url: str) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["db", "gaps", "--database-url", migrated_url, "--site", "dmeo"])
    assert unknown.exit_code == 2
    assert "no site 'dmeo'" in unknown.output and "never reported" in unknown.output
    assert "sites there: none yet" in unknown.output
    bad = runner.invoke(
        cli, ["db", "gaps", "--database-url", migrated_url, "--site", "x", "--since", "yesterday"]
    )
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
