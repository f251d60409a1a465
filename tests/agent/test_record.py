"""The heartbeat's record read back by a Flux of perhaps another version: what it does not
know is named (and, for a newer agent's additions, skipped), never a KeyError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from reconciler.clock import ManualClock
from reconciler.status.model import AgentStatus, ConditionType
from reconciler.status.record import StatusRecord, parse_status_record


def stored(**settings: Any) -> dict[str, Any]:
    """A record as the heartbeat stores it (JSON), from a live status."""
    status = AgentStatus(
        clock=ManualClock(datetime(2024, 1, 15, 12, tzinfo=UTC)), site="demo", source="git"
    )
    status.set_condition(ConditionType.READY, "True", "Running", "in control")
    record = StatusRecord.of(status.snapshot(), **settings)
    data: dict[str, Any] = json.loads(record.model_dump_json())
    return data


def test_a_stored_record_reads_back_whole() -> None:
    data = stored(device_settings={"ramp_up": 100.0, "real_power_mode": 1.0})
    parsed = parse_status_record(data)
    assert parsed.unknown == () and parsed.invalid == ()
    assert parsed.record is not None and parsed.record.device_settings == {
        "ramp_up": 100.0,
        "real_power_mode": 1.0,
    }
    assert parsed.record.ready
    failed = parse_status_record(stored(device_settings_error="timed out")).record
    assert failed is not None and failed.device_settings is None
    assert failed.device_settings_error == "timed out"


def test_a_field_added_to_every_condition_is_named_once_and_the_rest_is_read() -> None:
    data = stored()
    for cond in data["conditions"]:
        cond["severity"] = "info"
    data["battery_mode"] = "direct"
    parsed = parse_status_record(data)
    assert parsed.unknown == ("conditions.*.severity", "battery_mode")
    assert parsed.invalid == ()
    assert parsed.record is not None and parsed.record.ready


def test_a_missing_or_mistyped_field_is_named_and_nothing_is_used() -> None:
    data = stored()
    del data["revisions"]
    data["loop"]["ticks_total"] = "many"
    data["device_settings"] = {"ramp_up": "fast"}
    parsed = parse_status_record(data)
    assert parsed.record is None
    assert "revisions: missing" in parsed.invalid
    assert any(p.startswith("loop.ticks_total: ") for p in parsed.invalid), parsed.invalid
    assert any(p.startswith("device_settings.ramp_up: ") for p in parsed.invalid)
    assert parse_status_record(["not", "an", "object"]).invalid[0].startswith("(the record): ")


def test_an_older_agents_record_takes_the_defaults() -> None:
    data = stored()
    for newer in ("markets", "market_problems", "device_settings", "device_settings_error"):
        del data[newer]
    parsed = parse_status_record(data)
    assert parsed.record is not None and parsed.unknown == parsed.invalid == ()
    assert parsed.record.markets == [] and "markets" not in parsed.record.model_fields_set
