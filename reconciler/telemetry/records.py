"""How each kind of record is written into the outbox and read back for upload.

Readings (the bulk: battery and meter readings, and frequency response's one record a
second while the mode is active) are compact JSON arrays of numbers in a fixed order, instants as
integer microseconds since the Unix epoch (exact, cheap to check). Low-volume records
(decisions, status, market values, revisions) are JSON objects. Decoding checks shape and
types and raises :class:`MalformedRecord` with what is wrong, so a corrupted row is
quarantined instead of failing a whole batch or being dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from reconciler.control.types import BatteryReading, Decision, FrequencyRecord, MeterReading

Kind = Literal["bess", "meter", "frequency", "decision", "status", "market", "revision"]
KINDS: Final[tuple[Kind, ...]] = (
    "bess",
    "meter",
    "frequency",
    "decision",
    "status",
    "market",
    "revision",
)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
# Instants outside 2000..2200 are corruption, not telemetry.
_MIN_US: Final = 946_684_800_000_000
_MAX_US: Final = 7_258_118_400_000_000

METER_FIELDS: Final[tuple[str, ...]] = (
    "power_kw",
    "frequency_hz",
    "voltage_v",
    "current_a",
    "current_b",
    "current_c",
    "current_avg",
    "power_a_kw",
    "power_b_kw",
    "power_c_kw",
    "reactive_kvar",
    "apparent_kva",
    "power_factor",
    "energy_import_kwh",
    "energy_export_kwh",
)
BESS_FIELDS: Final[tuple[str, ...]] = (
    "soe_kwh",
    "target_power_kw",
    "actual_power_kw",
    "available_blocks",
    "command_source",
)

#: A frequency record after its time: Hz, kW (null: no response due), kW, kW, and 0/1 (a
#: JSON number, so the record takes the readings' fast path; the table's boolean reads it).
FREQUENCY_FIELDS: Final[tuple[str, ...]] = (
    "frequency_hz",
    "expected_kw",
    "delivered_kw",
    "tolerance_kw",
    "envelope_cut",
)

_NUMBERS: Final = frozenset({int, float})
_NUMBERS_OR_NULL: Final = frozenset({int, float, type(None)})


class MalformedRecord(ValueError):
    """An outbox row that cannot be uploaded as it is; the message says why."""


def to_us(at: datetime) -> int:
    """Microseconds since the Unix epoch of an aware instant."""
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no meaning here; pass a timezone-aware one")
    return (at - EPOCH) // _MICRO


def from_us(us: int) -> datetime:
    return EPOCH + us * _MICRO


def _reject_constant(name: str) -> Any:
    raise MalformedRecord(f"non-finite number {name}")


# One decoder for all calls: json.loads with a hook builds a new decoder every time.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(payload: object) -> Any:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRecord(f"payload is not UTF-8 text ({exc})") from None
    if not isinstance(payload, str):
        raise MalformedRecord(f"payload is a {type(payload).__name__}, not JSON text")
    try:
        return _DECODER.decode(payload)
    except json.JSONDecodeError as exc:
        raise MalformedRecord(f"payload is not valid JSON ({exc})") from None


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _check_time(us: object) -> int:
    if type(us) is not int or not _MIN_US <= us <= _MAX_US:
        raise MalformedRecord(f"time {us!r} is not microseconds since 1970 between 2000 and 2200")
    return us


# --------------------------------------------------------------------------- encode


def encode_bess(reading: BatteryReading, actual_power_kw: float | None = None) -> str:
    return _dumps(
        [
            to_us(reading.at),
            reading.soe_kwh,
            reading.target_power_kw,
            actual_power_kw,
            reading.available_blocks,
            reading.command_source,
        ]
    )


def encode_meter(reading: MeterReading) -> str:
    return _dumps([to_us(reading.at), *(getattr(reading, f) for f in METER_FIELDS)])


def encode_frequency(record: FrequencyRecord) -> str:
    return _dumps(
        [
            to_us(record.at),
            record.frequency_hz,
            record.expected_kw,
            record.delivered_kw,
            record.tolerance_kw,
            1 if record.envelope_cut else 0,
        ]
    )


def encode_decision(revision_sha: str | None, decision: Decision) -> str:
    return _dumps(
        {
            "at": to_us(decision.at),
            "revision_sha": revision_sha,
            "target_kw": decision.target_kw,
            "reason": decision.reason,
            "safe_stop": decision.safe_stop,
            "winner": decision.winner,
            "components": [asdict(c) for c in decision.components],
            "effective": list(decision.effective),
            "bound_by": list(decision.bound_by),
            "site_power_kw": decision.site_power_kw,
            "predicted_site_power_kw": decision.predicted_site_power_kw,
            "soe_kwh": decision.soe_kwh,
        }
    )


def encode_status(at: datetime, conditions: Mapping[str, Any]) -> str:
    return _dumps({"at": to_us(at), "conditions": conditions})


def encode_market(
    *,
    at: datetime,
    type: str,
    settlement_date: date,
    settlement_period: int,
    value: float,
    source: str,
    fetched_at: datetime,
) -> str:
    return _dumps(
        {
            "at": to_us(at),
            "type": type,
            "settlement_date": settlement_date.isoformat(),
            "settlement_period": settlement_period,
            "value": value,
            "source": source,
            "fetched_at": to_us(fetched_at),
        }
    )


def encode_revision(
    *,
    at: datetime,
    sha: str,
    state: str,
    conditions: Mapping[str, Any],
    errors: Sequence[str],
    message: str,
    identity: Mapping[str, Any] | None = None,
) -> str:
    """``identity``: the revision's site name, timezone and devices (see
    :func:`decode_revision`), so the database's sites and devices tables say them."""
    record: dict[str, Any] = {
        "at": to_us(at),
        "sha": sha,
        "state": state,
        "conditions": conditions,
        "errors": list(errors),
        "message": message,
    }
    if identity is not None:
        record["identity"] = identity
    return _dumps(record)


# --------------------------------------------------------------------------- decode
# Each decoder returns the staging row without site and device (the uploader adds them).


def decode_bess(payload: object) -> tuple[Any, ...]:
    v = _loads(payload)
    if type(v) is not list or len(v) != 6:
        raise MalformedRecord("a battery reading is a list of 6 values")
    if not set(map(type, v)) <= _NUMBERS_OR_NULL or None in (v[1], v[2]):
        raise MalformedRecord("battery reading values must be numbers (actual power may be null)")
    if type(v[4]) is not int or type(v[5]) is not int:
        raise MalformedRecord("available_blocks and command_source must be integers")
    _check_time(v[0])
    return tuple(v)


def decode_meter(payload: object) -> tuple[Any, ...]:
    v = _loads(payload)
    if type(v) is not list or len(v) != 16:
        raise MalformedRecord("a meter reading is a list of 16 numbers")
    if not set(map(type, v)) <= _NUMBERS:
        raise MalformedRecord("meter reading values must all be numbers")
    _check_time(v[0])
    return tuple(v)


def decode_frequency(payload: object) -> tuple[Any, ...]:
    v = _loads(payload)
    if type(v) is not list or len(v) != 6:
        raise MalformedRecord("a frequency record is a list of 6 values")
    if not set(map(type, v)) <= _NUMBERS_OR_NULL or None in (v[1], v[3], v[4], v[5]):
        raise MalformedRecord(
            "frequency record values must be numbers (the expected response may be null)"
        )
    if v[5] not in (0, 1) or type(v[5]) is not int:
        raise MalformedRecord("envelope_cut must be 0 or 1")
    _check_time(v[0])
    return tuple(v)


def _object(payload: object, what: str, keys: Sequence[str]) -> dict[str, Any]:
    v = _loads(payload)
    if type(v) is not dict:
        raise MalformedRecord(f"a {what} is a JSON object")
    missing = [k for k in keys if k not in v]
    if missing:
        raise MalformedRecord(f"a {what} lacks {', '.join(missing)}")
    _check_time(v["at"])
    return v


def _number(v: object, name: str, *, optional: bool = False) -> float | None:
    if v is None and optional:
        return None
    if type(v) not in _NUMBERS:
        raise MalformedRecord(f"{name} must be a number, not {v!r}")
    return float(v)  # type: ignore[arg-type]


def _text(v: object, name: str, *, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if type(v) is not str:
        raise MalformedRecord(f"{name} must be text, not {v!r}")
    return v


def _texts(v: object, name: str) -> list[str]:
    if type(v) is not list or not all(type(x) is str for x in v):
        raise MalformedRecord(f"{name} must be a list of text")
    return v


def decode_decision(payload: object) -> tuple[Any, ...]:
    keys = ("revision_sha", "target_kw", "reason", "safe_stop", "winner", "components")
    v = _object(payload, "decision", (*keys, "effective", "bound_by"))
    if type(v["safe_stop"]) is not bool:
        raise MalformedRecord("safe_stop must be true or false")
    if type(v["components"]) is not list:
        raise MalformedRecord("components must be a list")
    return (
        v["at"],
        _text(v["revision_sha"], "revision_sha", optional=True),
        _number(v["target_kw"], "target_kw"),
        _text(v["reason"], "reason"),
        v["safe_stop"],
        _text(v["winner"], "winner", optional=True),
        _dumps(v["components"]),
        _texts(v["effective"], "effective"),
        _texts(v["bound_by"], "bound_by"),
        _number(v.get("site_power_kw"), "site_power_kw", optional=True),
        _number(v.get("predicted_site_power_kw"), "predicted_site_power_kw", optional=True),
        _number(v.get("soe_kwh"), "soe_kwh", optional=True),
    )


def decode_status(payload: object) -> tuple[Any, ...]:
    v = _object(payload, "status", ("conditions",))
    if type(v["conditions"]) is not dict:
        raise MalformedRecord("status conditions must be a JSON object")
    return (v["at"], _dumps(v["conditions"]))


def decode_market(payload: object) -> tuple[Any, ...]:
    keys = ("type", "settlement_date", "settlement_period", "value", "source", "fetched_at")
    v = _object(payload, "market value", keys)
    try:
        day = date.fromisoformat(_text(v["settlement_date"], "settlement_date") or "")
    except ValueError:
        raise MalformedRecord(f"settlement_date {v['settlement_date']!r} is not a date") from None
    period = v["settlement_period"]
    if type(period) is not int or not 1 <= period <= 50:
        raise MalformedRecord(f"settlement_period {period!r} is not 1..50")
    return (
        v["at"],
        _text(v["type"], "type"),
        day.isoformat(),
        period,
        _number(v["value"], "value"),
        _text(v["source"], "source"),
        _check_time(v["fetched_at"]),
    )


def decode_revision(payload: object) -> tuple[Any, ...]:
    v = _object(payload, "revision", ("sha", "state", "conditions", "errors", "message"))
    if type(v["conditions"]) is not dict:
        raise MalformedRecord("revision conditions must be a JSON object")
    identity = v.get("identity")
    if identity is not None:
        identity = _dumps(_identity(identity))
    return (
        v["at"],
        _text(v["sha"], "sha"),
        _text(v["state"], "state"),
        _dumps(v["conditions"]),
        _dumps(_texts(v["errors"], "errors")),
        _text(v["message"], "message"),
        identity,
    )


def _identity(v: object) -> dict[str, Any]:
    """``{"name", "timezone", "site_import_kw", "site_export_kw", "nameplate_energy_kwh",
    "devices": [{"device", "kind", "role"}, ...]}`` (kW, kWh; numbers may be null); kind is
    bess or meter, role the meter's role (grid, battery, ...) or null for the battery."""
    if type(v) is not dict:
        raise MalformedRecord("a revision's identity is a JSON object")
    devices = v.get("devices")
    if type(devices) is not list:
        raise MalformedRecord("a revision's identity lists its devices")
    out = []
    for d in devices:
        if type(d) is not dict or d.get("kind") not in ("bess", "meter"):
            raise MalformedRecord("an identity device is {device, kind: bess|meter, role}")
        out.append(
            {
                "device": _text(d.get("device"), "device"),
                "kind": d["kind"],
                "role": _text(d.get("role"), "role", optional=True),
            }
        )
    return {
        "name": _text(v.get("name"), "name"),
        "timezone": _text(v.get("timezone"), "timezone"),
        "site_import_kw": _number(v.get("site_import_kw"), "site_import_kw", optional=True),
        "site_export_kw": _number(v.get("site_export_kw"), "site_export_kw", optional=True),
        "nameplate_energy_kwh": _number(
            v.get("nameplate_energy_kwh"), "nameplate_energy_kwh", optional=True
        ),
        "devices": out,
        "red_bands": _red_bands(v.get("red_bands")),
    }


_HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _red_bands(v: object) -> list[dict[str, Any]] | None:
    """``[{"days": [1..7], "from", "to", "start", "end"}, ...]`` (ISO weekdays, optional
    YYYY-MM-DD dates, local HH:MM times) or null (an agent from before red bands)."""
    if v is None:
        return None
    if type(v) is not list:
        raise MalformedRecord("red_bands must be a list")
    out = []
    for b in v:
        if type(b) is not dict:
            raise MalformedRecord("a red band is {days, from, to, start, end}")
        days = b.get("days")
        if type(days) is not list or not all(type(d) is int and 1 <= d <= 7 for d in days):
            raise MalformedRecord("a red band's days are ISO weekdays 1 to 7")
        times = [_text(b.get(k), k) for k in ("start", "end")]
        if not all(_HHMM.match(t or "") for t in times):
            raise MalformedRecord(f"a red band's start and end are HH:MM, not {times}")
        dates = [_text(b.get(k), k, optional=True) for k in ("from", "to")]
        if not all(d is None or _DATE.match(d) for d in dates):
            raise MalformedRecord(f"a red band's dates are YYYY-MM-DD, not {dates}")
        out.append(
            {"days": days, "from": dates[0], "to": dates[1], "start": times[0], "end": times[1]}
        )
    return out


# --------------------------------------------------------------------------- COPY text
# Readings are copied as text straight from their JSON: a JSON number is valid PostgreSQL
# float8/bigint input, so only the separators change. The fast path (outbox.read_batch)
# checks only the framing; the staging tables check the values (types, field count,
# finite numbers, time range) and a rejected batch is split until the bad row is found
# and quarantined with the message of the full check (``DECODERS``).

READING_KINDS: Final = frozenset({"bess", "meter", "frequency"})


def _line(payload: str) -> str:
    return payload[1:-1].replace(",", "\t").replace("null", "\\N")


def reading_line(kind: str, payload: object) -> str:
    """The COPY text fields of one reading (after the site and device), fully checked."""
    DECODERS[kind](payload)
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    assert isinstance(text, str)
    return _line(text.strip())


DECODERS: Final[dict[str, Callable[[object], tuple[Any, ...]]]] = {
    "bess": decode_bess,
    "meter": decode_meter,
    "frequency": decode_frequency,
    "decision": decode_decision,
    "status": decode_status,
    "market": decode_market,
    "revision": decode_revision,
}


def describe(kind: str, payload: object) -> dict[str, Any]:
    """A readable view of one outbox row (for `latest` and the demo's live table)."""
    row = DECODERS[kind](payload)
    if kind == "bess":
        return {"at": from_us(row[0]), **dict(zip(BESS_FIELDS, row[1:], strict=True))}
    if kind == "meter":
        return {"at": from_us(row[0]), **dict(zip(METER_FIELDS, row[1:], strict=True))}
    if kind == "frequency":
        values = dict(zip(FREQUENCY_FIELDS, row[1:], strict=True))
        return {"at": from_us(row[0]), **values, "envelope_cut": bool(values["envelope_cut"])}
    v = _loads(payload)
    assert isinstance(v, dict)
    return {**v, "at": from_us(row[0])}
