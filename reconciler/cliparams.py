"""Command-line values every command reads the same way: days, instants and finite
numbers, each refused with a usage error (exit 2) that says what to write instead.

Dates and instants are held to the years Flux can reason about (:data:`FIRST_YEAR` to
:data:`LAST_YEAR`): settlement calendars, clock changes, wrapped price replays and
history windows all reach days or weeks either side of what the user asked for, and at
the ends of the calendar that arithmetic overflows.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

import click

FIRST_YEAR = 1970
LAST_YEAR = 2199


def _check_year(year: int, text: str, param_hint: str | None) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise click.BadParameter(
            f"{text!r} is outside the years Flux works with ({FIRST_YEAR}-{LAST_YEAR})",
            param_hint=param_hint,
        )


def instant(
    text: str, default_tz: tzinfo, param_hint: str, example: str = "2024-01-15T15:30"
) -> datetime:
    """An ISO 8601 date-time; without an offset it is in ``default_tz``."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time such as {example}", param_hint=param_hint
        ) from None
    _check_year(at.year, text, param_hint)
    return at if at.tzinfo is not None else at.replace(tzinfo=default_tz)


class Day(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A day written YYYY-MM-DD, as a naive datetime at its midnight (what
    ``click.DateTime`` gives, so callers take ``.date()``)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            if len(text) == 10 and text[4] == "-" and text[7] == "-":
                self.fail(f"{value!r} is not a day of the calendar ({exc})", param, ctx)
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)
        _check_year(day.year, text, param.get_error_hint(ctx) if param and ctx else None)
        return datetime(day.year, day.month, day.day)


DAY = Day()


class FiniteRange(click.FloatRange):
    """click's FloatRange that also refuses nan and infinity (which pass its bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def check_output_path(path: Path, option: str) -> None:
    """Before work that may take minutes: a file can be written at ``path`` (an --out,
    --plot or --site-out), else click.BadParameter (exit 2). Its folder exists and a file
    can be made there (one is made and removed: the one test that holds for root, whom
    every permission check lets through, and for /proc, where nothing can be made), and
    a file already there may be written."""
    if path.is_dir():
        raise click.BadParameter(f"{path} is a folder; name a file in it", param_hint=option)
    folder = path.parent
    if not folder.is_dir():
        raise click.BadParameter(
            f"{path}: the folder {folder} does not exist; create it or choose another path",
            param_hint=option,
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".flux-"):
            pass
    except OSError as exc:
        raise click.BadParameter(
            f"{path}: cannot write in the folder {folder} ({exc.strerror or exc}); "
            "choose another path",
            param_hint=option,
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise click.BadParameter(
            f"{path}: the file is read-only; choose another path", param_hint=option
        )
