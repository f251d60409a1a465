"""The direct COPY path of in-order readings: exact times, when it applies, and energy
deltas identical to those the database derives itself."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg

from reconciler.control.types import BatteryReading, MeterReading
from reconciler.telemetry import ingest
from reconciler.telemetry.outbox import DeviceRows, Outbox
from reconciler.telemetry.records import EPOCH, encode_bess, encode_meter
from reconciler.telemetry.uploader import Uploader

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def test_timestamp_text_is_exact_to_the_microsecond() -> None:
    rng = random.Random(6)
    samples = [rng.randrange(946_684_800_000_000, 7_258_118_400_000_000) for _ in range(5000)]
    whole_seconds = [us - us % 1_000_000 for us in samples[:500]]
    for us in [946_684_800_000_000, 7_258_118_399_999_999, *samples, *whole_seconds]:
        instant = EPOCH + timedelta(microseconds=us)
        text = ingest.timestamp_text(us)
        assert datetime.fromisoformat(text) == instant
        fraction = f".{instant.microsecond:06d}" if instant.microsecond else ""
        assert text == instant.strftime(f"%Y-%m-%d %H:%M:%S{fraction}+00")


def test_direct_rows_write_the_same_instants_as_timestamp_text() -> None:
    # Whole seconds, a fraction, and an hour boundary crossed inside one device's rows.
    base = 1_767_225_600_000_000 + 59 * 60_000_000  # 2026-01-01 00:59 UTC
    stamps = [base, base + 30_000_123, base + 60_000_000, base + 3_600_000_000]
    rows = [(i, f"[{us},1.0,2.0,null,4,1]") for i, us in enumerate(stamps)]
    direct = ingest.direct_rows("bess", [DeviceRows("s", "b", rows)])
    assert direct is not None
    written = [line.split(",")[2] for line in direct.lines]
    assert written == [ingest.timestamp_text(us) for us in stamps]
    assert written[1] == "2026-01-01 00:59:30.000123+00"


def _meter(minute: int, imp: float) -> MeterReading:
    return MeterReading(
        at=T0 + timedelta(minutes=minute),
        power_kw=1.5,
        energy_import_kwh=imp,
        energy_export_kwh=2.0,
    )


def _readings(payloads: list[str]) -> list[DeviceRows]:
    return [DeviceRows("s", "m", list(enumerate(payloads)))]


def test_direct_form_only_for_rows_strictly_in_time_order() -> None:
    in_order = [encode_meter(_meter(i, 10.0 + i)) for i in range(3)]
    direct = ingest.direct_rows("meter", _readings(in_order))
    assert direct is not None and len(direct.lines) == 3
    # The first line of a device waits for its stored predecessor's counters.
    assert list(direct.seeds) == [("s", "m")] and direct.seeds["s", "m"][0] == 0
    assert direct.lines[1].endswith(",1.0,0.0")
    assert direct.lines[1].startswith('"s","m",2026-03-02 09:01:00.123456+00,1.5,')

    swapped = [in_order[1], in_order[0], in_order[2]]
    assert ingest.direct_rows("meter", _readings(swapped)) is None
    twice = [in_order[0], in_order[0]]
    assert ingest.direct_rows("meter", _readings(twice)) is None
    unparsed = [in_order[0], in_order[1].replace(",2.0]", ",null]")]
    assert ingest.direct_rows("meter", _readings(unparsed)) is None
    too_early = ["[12,1.0,2.0,null,4,1]"]
    assert ingest.direct_rows("bess", _readings(too_early)) is None


def test_direct_deltas_equal_the_databases_own(migrated_url: str, outbox: Outbox) -> None:
    # Counters with decimals that floats cannot hold exactly, a reset (at minute 8, the
    # first row of a batch: its delta is seeded from the stored row), and a second device.
    counters = [1000.1 + 0.7 * i for i in range(8)] + [0.3 + 1.1 * i for i in range(8)]
    for minute, value in enumerate(counters):
        outbox.add_meter("s", "m", _meter(minute, value))
        outbox.add_meter("s", "n", _meter(minute, value * 3))
    first = outbox.read_batch(16).readings["meter"]
    assert ingest.direct_rows("meter", first) is not None  # the path under test
    assert Uploader(outbox, migrated_url, batch_size=16).drain().sent == {"meter": 32}
    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute(
            """
            SELECT device, time, energy_import_delta_kwh,
                   CASE WHEN prev IS NULL THEN 0 WHEN imp >= prev THEN imp - prev ELSE imp END
            FROM (SELECT device, time, energy_import_delta_kwh, energy_import_kwh AS imp,
                         lag(energy_import_kwh) OVER (PARTITION BY device ORDER BY time) AS prev
                  FROM flux.meter_readings) x
            ORDER BY device, time
            """
        ).fetchall()
    assert len(rows) == 32
    for device, _, stored, derived in rows:
        assert stored == derived, device  # bit for bit, not approximately
    resets = [r for r in rows if r[1] == T0 + timedelta(minutes=8)]
    assert [r[2] for r in resets] == [0.3, 0.3 * 3]


def test_bess_direct_keeps_a_missing_actual_power_null(migrated_url: str, outbox: Outbox) -> None:
    for minute in range(3):
        reading = BatteryReading(T0 + timedelta(minutes=minute), 100.0, -5.0, 4, 1)
        outbox.add_bess("s", 'b"1', reading, actual_power_kw=None if minute else 4.5)
    assert encode_bess(BatteryReading(T0, 1.0, 2.0, 3, 4)).endswith(",null,3,4]")
    assert Uploader(outbox, migrated_url).drain().sent == {"bess": 3}
    with psycopg.connect(migrated_url) as conn:
        got = conn.execute(
            "SELECT device, time, actual_power_kw FROM flux.bess_readings ORDER BY time"
        ).fetchall()
    assert got == [('b"1', T0 + timedelta(minutes=m), 4.5 if m == 0 else None) for m in range(3)]
