"""Synthetic readings for the benchmarks: one a minute from ``start``, battery and meter,
values that vary as real ones do (so nothing compresses or dedupes unrealistically)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from reconciler.control.types import BatteryReading, MeterReading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bess_readings(n: int, start: datetime = T0) -> Iterator[BatteryReading]:
    for i in range(n):
        yield BatteryReading(start + timedelta(minutes=i), 500.0 + (i % 700) * 0.5, -120.5, 4, 1)


def meter_readings(n: int, start: datetime = T0) -> Iterator[MeterReading]:
    for i in range(n):
        yield MeterReading(
            start + timedelta(minutes=i),
            power_kw=35.25 + i % 13,
            frequency_hz=49.98,
            voltage_v=415.2,
            current_a=50.1,
            current_b=49.7,
            current_c=51.3,
            current_avg=50.4,
            power_a_kw=11.7,
            power_b_kw=11.6,
            power_c_kw=12.0,
            reactive_kvar=3.1,
            apparent_kva=36.0,
            power_factor=0.98,
            energy_import_kwh=10_000.0 + i * 0.6,
            energy_export_kwh=2_000.0 + i * 0.1,
        )
