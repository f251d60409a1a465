"""Checks of single JSON fields shared by the market clients. Each returns the value or
raises ValueError whose message completes "<where>.<field>: ..." (the caller wraps it in
MarketMalformed, naming the source and the call)."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from reconciler.control.periods import SettlementPeriod, periods_in_day

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def describe(value: Any) -> str:
    """A short, typed rendering of a value for an error message."""
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def settlement_day(raw: Any) -> date:
    """A ``YYYY-MM-DD`` settlement date."""
    if not isinstance(raw, str) or not _ISO_DATE.fullmatch(raw):
        raise ValueError(f"expected YYYY-MM-DD, got {raw!r}")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a calendar date") from None


def settlement_period(day: date, raw: Any) -> SettlementPeriod:
    """Period ``raw`` of ``day``: an integer within the day's 46, 48 or 50 periods."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"expected an integer, got {raw!r}")
    last = periods_in_day(day)
    if not 1 <= raw <= last:
        raise ValueError(f"{raw} is outside 1..{last} for {day}")
    return SettlementPeriod(day, raw)


def finite_number(raw: Any) -> float:
    """A JSON number that is finite (Python's JSON reader accepts NaN and Infinity)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"expected a number, got {raw!r}")
    if not math.isfinite(raw):
        raise ValueError(f"{raw!r} is not a finite number")
    return float(raw)


def items_of(body: Any, key: str) -> list[Any]:
    """``body[key]``: a reply must be a JSON object holding a list there."""
    if not isinstance(body, dict) or key not in body:
        raise ValueError(f'expected an object with "{key}", got {describe(body)}')
    items = body[key]
    if not isinstance(items, list):
        raise ValueError(f'"{key}" should be a list, got {describe(items)}')
    return items


def record(item: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """One item of such a list: an object with every one of ``fields``."""
    if not isinstance(item, dict):
        raise ValueError(f"{where} should be an object, got {describe(item)}")
    for name in fields:
        if name not in item:
            raise ValueError(f'{where}: field "{name}" is missing')
    return item
