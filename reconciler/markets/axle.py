"""Axle Energy flexibility dispatch: the battery schedule as an AxleFeed, delivery
readings and dispatch-event callbacks.

Calls (docs/domain.md, "Axle Energy"): a form login for a bearer token, the asset's battery
schedule, readings that report delivery, and a status callback per dispatch event. Axle's
sign convention is + import / charging; Flux's battery power is + discharge, so readings
are converted here (:func:`delivery_readings`) and nowhere else.

The schedule is not market data: :meth:`AxleClient.poll` keeps it for the control loop
and returns no MarketPoints.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args
from urllib.parse import quote

import httpx

from reconciler.config.model import AxleSettings
from reconciler.control.types import AxleAction, AxleStep
from reconciler.logs import log_event
from reconciler.markets.errors import MarketMalformed, MarketRejected
from reconciler.markets.fields import describe, items_of, record
from reconciler.markets.http import request_json
from reconciler.markets.points import MarketPoint

SOURCE: Final = "axle"

log = logging.getLogger("flux.markets.axle")

_ACTIONS: Final[dict[str, AxleAction]] = {a: a for a in get_args(AxleAction)}

ReadingLabel = Literal[
    "boundary_import_kw", "battery_inverter_import_kw", "battery_stored_energy_kwh"
]
READING_LABELS: Final[frozenset[str]] = frozenset(get_args(ReadingLabel))

CallbackStatus = Literal["RECEIVED", "ACCEPTED", "REJECTED", "FAILED", "EXECUTED"]
CALLBACK_STATUSES: Final[frozenset[str]] = frozenset(get_args(CallbackStatus))

MIN_STALE_S: Final = 300.0
"""The schedule counts as stale after ``max(3 * poll_s, MIN_STALE_S)`` seconds without a
successful poll, so a short poll interval does not make one slow reply an outage."""

_STEP_FIELDS: Final = ("start_timestamp", "end_timestamp", "action", "allow_deviation")

_TOKEN_WHAT: Final = "POST auth/token-form"
_SCHEDULE_WHAT: Final = "GET battery-schedule"
_READINGS_WHAT: Final = "POST data/readings"


# --------------------------------------------------------------------------- readings


def _require_aware(name: str, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {at.isoformat()}")


def _wire_time(at: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset, as Axle's own timestamps carry one."""
    return at.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class AxleReading:
    """One delivery reading over ``[start, end)`` in Axle's convention: powers in kW,
    + import / + charging; stored energy in kWh."""

    start: datetime
    end: datetime
    value: float
    label: ReadingLabel

    def __post_init__(self) -> None:
        _require_aware("start", self.start)
        _require_aware("end", self.end)
        if self.end <= self.start:
            raise ValueError(
                f"a reading must end after it starts: {self.start.isoformat()} .. "
                f"{self.end.isoformat()}"
            )
        if self.label not in READING_LABELS:
            raise ValueError(f"unknown reading label {self.label!r}")
        # JSON has no NaN or infinity; refuse here rather than fail inside the request.
        if isinstance(self.value, bool) or not math.isfinite(self.value):
            raise ValueError(f"{self.label}: value must be a finite number, got {self.value!r}")


def delivery_readings(
    start: datetime,
    end: datetime,
    site_power_kw: float,
    battery_power_kw: float,
    soe_kwh: float,
) -> list[AxleReading]:
    """The three delivery readings for one interval, from Flux's signs to Axle's.

    ``site_power_kw`` is + import in both conventions; ``battery_power_kw`` is Flux's
    + discharge, reported as ``battery_inverter_import_kw`` = −battery power (+ charging);
    ``soe_kwh`` is the state of energy, kWh.
    """
    return [
        AxleReading(start, end, float(site_power_kw), "boundary_import_kw"),
        # 0.0 - x rather than -x: an idle battery is reported as 0.0, never -0.0.
        AxleReading(start, end, 0.0 - float(battery_power_kw), "battery_inverter_import_kw"),
        AxleReading(start, end, float(soe_kwh), "battery_stored_energy_kwh"),
    ]


# --------------------------------------------------------------------------- schedule


def _timestamp(index: int, name: str, raw: Any) -> datetime:
    where = f"schedule_steps[{index}].{name}"
    if not isinstance(raw, str):
        raise MarketMalformed(
            SOURCE, _SCHEDULE_WHAT, f"{where}: expected an ISO 8601 string, got {describe(raw)}"
        )
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise MarketMalformed(
            SOURCE, _SCHEDULE_WHAT, f"{where}: {raw!r} is not an ISO 8601 timestamp"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise MarketMalformed(
            SOURCE,
            _SCHEDULE_WHAT,
            f"{where}: {raw!r} has no UTC offset, so the instant it means is unknown",
        )
    return at.astimezone(UTC)


def parse_schedule(body: Any) -> list[AxleStep]:
    """The steps of a battery-schedule reply, sorted by start (UTC instants).

    Strict: every step has exactly the four documented fields; timestamps carry an
    offset; start < end; action is one of the four; allow_deviation is a JSON boolean.
    Anything else is MarketMalformed naming the step index and field, and no step of
    that reply is used.
    """

    def bad(problem: str) -> MarketMalformed:
        return MarketMalformed(SOURCE, _SCHEDULE_WHAT, problem)

    try:
        raw_steps = items_of(body, "schedule_steps")
    except ValueError as exc:
        raise bad(str(exc)) from None
    steps: list[AxleStep] = []
    for i, item in enumerate(raw_steps):
        where = f"schedule_steps[{i}]"
        try:
            item = record(item, where, _STEP_FIELDS)
        except ValueError as exc:
            raise bad(str(exc)) from None
        unknown = sorted(str(k) for k in item if k not in _STEP_FIELDS)
        if unknown:
            raise bad(f'{where}: unknown field "{unknown[0]}" (the schedule format changed?)')
        start = _timestamp(i, "start_timestamp", item["start_timestamp"])
        end = _timestamp(i, "end_timestamp", item["end_timestamp"])
        if end <= start:
            raise bad(
                f"{where}.end_timestamp: {item['end_timestamp']!r} is not after "
                f"start_timestamp {item['start_timestamp']!r}"
            )
        raw_action = item["action"]
        action = _ACTIONS.get(raw_action) if isinstance(raw_action, str) else None
        if action is None:
            raise bad(
                f"{where}.action: expected one of {', '.join(sorted(_ACTIONS))}, "
                f"got {describe(raw_action)}"
            )
        deviation = item["allow_deviation"]
        if not isinstance(deviation, bool):
            raise bad(f"{where}.allow_deviation: expected true or false, got {describe(deviation)}")
        steps.append(AxleStep(start=start, end=end, action=action, allow_deviation=deviation))
    steps.sort(key=lambda s: (s.start, s.end))
    return steps


# --------------------------------------------------------------------------- client


class _Bearer(httpx.Auth):
    """Puts the bearer token (if any) on one request and remembers the reply's status,
    so a 401 is told apart from other refusals without reading error messages."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.status: int | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        self.status = response.status_code


class AxleClient:
    """The live Axle Energy client: an AxleFeed polled by the agent's market runner.

    Token: fetched on first use, fetched again once it is older than ``token_max_age_s``
    (Axle's tokens last an hour) and once more when a data call answers 401; a second
    401 is MarketRejected. ``clock`` gives monotonic seconds for the token's age (real
    time, whatever clock drives the poll's ``now``).

    Staleness (:meth:`axle_steps`): when the last successful poll is more than
    ``max(3 * poll_s, 300)`` s before ``at``, the client keeps serving the steps it already
    knew at that poll, unchanged, until each ends: a dispatch Axle sent and we accepted must
    still be honoured through a short outage, and dropping it would break a commitment
    silently. Nothing is added, extended or repeated while stale (no invented steps), and
    :meth:`is_stale` tells the caller so it can be reported. Before the first successful
    poll there are no steps. A malformed reply replaces nothing.
    """

    source: str = SOURCE

    def __init__(
        self,
        settings: AxleSettings,
        *,
        client: httpx.AsyncClient,
        username: str,
        password: str,
        token_max_age_s: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.poll_s = settings.poll_s
        self.token_max_age_s = token_max_age_s
        self.last_success_at: datetime | None = None
        self._client = client
        self._username = username
        self._password = password
        self._clock = clock
        self._token: str | None = None
        self._token_at = 0.0
        self._login_lock = asyncio.Lock()
        self._steps: list[AxleStep] = []
        self._base = settings.base_url.rstrip("/")
        self._asset = quote(settings.asset_id, safe="")

    def __repr__(self) -> str:
        # Never the password or the token.
        return f"AxleClient(base_url={self._base!r}, asset_id={self.settings.asset_id!r})"

    # ------------------------------------------------------------------ token

    def _token_fresh(self) -> bool:
        return self._token is not None and self._clock() - self._token_at < self.token_max_age_s

    async def _login(self) -> str:
        """A new bearer token. A refused login names the credential variables, never
        their values; no reply body is echoed (a validation error may quote the input)."""
        auth = _Bearer(None)
        try:
            body = await request_json(
                self._client,
                SOURCE,
                "POST",
                f"{self._base}/auth/token-form",
                what=_TOKEN_WHAT,
                data={"username": self._username, "password": self._password},
                auth=auth,
            )
        except MarketRejected:
            vars_ = f"{self.settings.username_env} and {self.settings.password_env}"
            if auth.status in (401, 403):
                problem = f"login refused (HTTP {auth.status}); check the {vars_} variables"
            else:
                problem = (
                    f"the login form was not accepted (HTTP {auth.status}); check "
                    f"{self._base}/auth/token-form and the {vars_} variables"
                )
            raise MarketRejected(SOURCE, _TOKEN_WHAT, problem) from None
        except MarketMalformed:
            raise MarketMalformed(SOURCE, _TOKEN_WHAT, "the login reply is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise MarketMalformed(
                SOURCE, _TOKEN_WHAT, 'the login reply has no "access_token" string'
            )
        self._token = token
        self._token_at = self._clock()
        log_event(log, "axle_login", base_url=self._base)
        return token

    async def _current_token(self) -> str:
        async with self._login_lock:
            # Another call may have logged in while this one waited for the lock.
            if self._token_fresh():
                assert self._token is not None
                return self._token
            return await self._login()

    async def _authorized(self, method: str, url: str, *, what: str, **kwargs: Any) -> Any:
        """One data call with the bearer token; on a 401 log in again and retry once.
        A 2xx reply that is not JSON (an empty 200 or 204 to a POST) gives None."""
        token = await self._current_token()
        for attempt in (1, 2):
            auth = _Bearer(token)
            try:
                return await request_json(
                    self._client, SOURCE, method, url, what=what, auth=auth, **kwargs
                )
            except MarketRejected:
                if auth.status != 401:
                    raise
                if attempt == 2:
                    raise MarketRejected(
                        SOURCE,
                        what,
                        "HTTP 401 again right after a fresh login: the account may not have "
                        f"access to asset {self.settings.asset_id!r}",
                    ) from None
                # Unless a concurrent call already replaced it, this token is dead.
                if self._token == token:
                    self._token = None
                token = await self._current_token()
            except MarketMalformed:
                if auth.status is not None and 200 <= auth.status < 300 and method != "GET":
                    return None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ schedule

    async def poll(self, now: datetime) -> list[MarketPoint]:
        """Fetch the battery schedule and keep it (replacing the previous one only when
        the reply is valid). Returns no MarketPoints: a schedule is not a value per
        settlement period; the decisions it drives are recorded with their reasons."""
        body = await self._authorized(
            "GET",
            f"{self._base}/entities/asset/{self._asset}/battery-schedule",
            what=_SCHEDULE_WHAT,
        )
        steps = parse_schedule(body)
        if steps != self._steps:
            log_event(
                log,
                "axle_schedule",
                steps=len(steps),
                first_start=steps[0].start.isoformat() if steps else None,
                last_end=steps[-1].end.isoformat() if steps else None,
            )
        self._steps = steps
        self.last_success_at = now
        return []

    def stale_after_s(self) -> float:
        """Seconds without a successful poll after which the schedule is stale."""
        return max(3.0 * self.poll_s, MIN_STALE_S)

    def is_stale(self, at: datetime) -> bool:
        """Whether the schedule served at ``at`` comes from an outdated poll (or none)."""
        if self.last_success_at is None:
            return True
        return (at - self.last_success_at).total_seconds() > self.stale_after_s()

    def axle_steps(self, at: datetime) -> Sequence[AxleStep]:
        """The known steps that have not ended at ``at``, sorted by start; stale or not
        (see the class docstring), no step is ever served that the last valid reply did
        not contain."""
        return [s for s in self._steps if s.end > at]

    # ------------------------------------------------------------------ delivery

    async def report_readings(self, readings: Sequence[AxleReading]) -> None:
        """Report delivery readings (Axle's signs: + import / charging). Nothing to send
        sends nothing."""
        if not readings:
            return
        payload = {
            "readings": [
                {
                    "asset_id": self.settings.asset_id,
                    "start_timestamp": _wire_time(r.start),
                    "end_timestamp": _wire_time(r.end),
                    "value": r.value,
                    "label": r.label,
                }
                for r in readings
            ]
        }
        await self._authorized(
            "POST", f"{self._base}/data/readings", what=_READINGS_WHAT, json=payload
        )

    async def callback(self, event_id: str, status: str, at: datetime) -> None:
        """Tell Axle what became of dispatch event ``event_id`` at ``at``: RECEIVED,
        ACCEPTED, REJECTED, FAILED or EXECUTED (anything else is a ValueError)."""
        if status not in CALLBACK_STATUSES:
            raise ValueError(
                f"Axle callback status must be one of {', '.join(sorted(CALLBACK_STATUSES))}, "
                f"got {status!r}"
            )
        if not event_id:
            raise ValueError("Axle callback needs an event id")
        _require_aware("at", at)
        await self._authorized(
            "POST",
            f"{self._base}/entities/asset/{self._asset}/callback/{quote(event_id, safe='')}",
            what=f"POST callback {status}",
            json={"timestamp": _wire_time(at), "status": status},
        )
