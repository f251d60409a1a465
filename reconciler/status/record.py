"""What one heartbeat of the agent records (``flux.agent_status.conditions``), and how a
record is read back by a Flux of perhaps another version.

A leaf module: `flux diff` imports it without the agent's runtime wiring.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.status.model import StatusSnapshot


class StatusRecord(StatusSnapshot):
    """The status snapshot and the battery's writable settings read back when it was
    taken (ramps kW/s, heartbeat timeout s, flags as 0/1), or why they could not be.

    The agent's ``/status`` serves a snapshot alone; it reads as a record without settings.
    """

    device_settings: dict[str, float] | None = None
    device_settings_error: str | None = None

    @classmethod
    def of(
        cls,
        snapshot: StatusSnapshot,
        *,
        device_settings: dict[str, float] | None = None,
        device_settings_error: str | None = None,
    ) -> StatusRecord:
        return cls(
            **dict(snapshot),
            device_settings=device_settings,
            device_settings_error=device_settings_error,
        )


@dataclass(frozen=True)
class ParsedStatus:
    """A stored status read with this version's model.

    ``unknown``: dotted paths of fields this version does not know; they are dropped and the
    rest is read (a newer agent, or a field renamed). ``invalid``: ``path: problem`` of
    fields missing or of the wrong type; then ``record`` is None, as nothing of it can be
    trusted.
    """

    record: StatusRecord | None
    unknown: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


def _path(loc: Sequence[int | str]) -> str:
    """``conditions.*.severity`` for a field of every condition: one name, not seven."""
    return ".".join("*" if isinstance(part, int) else part for part in loc) or "(the record)"


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _without(data: Any, locations: Sequence[Sequence[int | str]]) -> Any:
    """A copy of ``data`` without the values at ``locations`` (pydantic error locations)."""
    pruned = copy.deepcopy(data)
    for loc in locations:
        parent = pruned
        for part in loc[:-1]:
            parent = parent[part]
        del parent[loc[-1]]
    return pruned


def parse_status_record(data: object) -> ParsedStatus:
    """Read a stored or served status (a JSON object, as a dict).

    Fields a newer agent added are tolerated (named in ``unknown``), since agents and the
    operator's Flux are upgraded apart; fields an older agent did not have take their
    defaults. A field that is missing without a default, or of the wrong type, makes the
    record unreadable (named in ``invalid``), never a KeyError further on.
    """
    try:
        return ParsedStatus(StatusRecord.model_validate(data))
    except ValidationError as exc:
        errors = exc.errors()
    extra = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
    unknown = _unique([_path(loc) for loc in extra])
    invalid = _unique(
        [
            f"{_path(e['loc'])}: {'missing' if e['type'] == 'missing' else e['msg']}"
            for e in errors
            if e["type"] != "extra_forbidden"
        ]
    )
    if invalid:
        return ParsedStatus(None, unknown, invalid)
    return ParsedStatus(StatusRecord.model_validate(_without(data, extra)), unknown)
