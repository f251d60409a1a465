"""A fake Axle Energy API (for httpx.MockTransport), shaped as docs/domain.md documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from reconciler.config.model import AxleSettings

BASE = "https://axle.test/api"
USER = "flux-site@example.org"
PASSWORD = "Pa55-w0rd-never-shown"
BST = timezone(timedelta(hours=1))
T0 = datetime(2025, 4, 29, 18, 0, tzinfo=UTC)


def settings(poll_s: float = 60.0, asset_id: str = "asset-1") -> AxleSettings:
    return AxleSettings(
        base_url=BASE,
        asset_id=asset_id,
        username_env="AXLE_USERNAME",
        password_env="AXLE_PASSWORD",
        poll_s=poll_s,
    )


def step_json(
    start: str, end: str, action: str = "charge_max", allow_deviation: bool = False
) -> dict[str, Any]:
    return {
        "start_timestamp": start,
        "end_timestamp": end,
        "action": action,
        "allow_deviation": allow_deviation,
    }


# Shaped as docs/domain.md documents; deliberately not in start order.
SCHEDULE = {
    "schedule_steps": [
        step_json("2025-04-29T20:05:00+01:00", "2025-04-29T20:10:00+01:00", "avoid_import", True),
        step_json("2025-04-29T20:00:00+01:00", "2025-04-29T20:05:00+01:00", "charge_max"),
        step_json("2025-04-29T19:30:00Z", "2025-04-29T20:00:00Z", "discharge_max"),
    ]
}


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeAxle:
    """The Axle API as docs/domain.md describes it. Tokens it issued are honoured until
    ``revoke``; replies can be overridden per route with queued responses."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.logins = 0
        self.valid: set[str] = set()
        self.schedule: Any = SCHEDULE
        self.login_replies: list[httpx.Response] = []
        self.schedule_replies: list[httpx.Response] = []
        self.post_replies: list[httpx.Response] = []

    def revoke(self) -> None:
        self.valid.clear()

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/auth/token-form" and request.method == "POST":
            if self.login_replies:
                return self.login_replies.pop(0)
            self.logins += 1
            token = f"tok-{self.logins}"
            self.valid.add(token)
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer"})
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, json={"detail": "Could not validate credentials"})
        if path == "/api/entities/asset/asset-1/battery-schedule" and request.method == "GET":
            if self.schedule_replies:
                return self.schedule_replies.pop(0)
            return httpx.Response(200, json=self.schedule)
        if request.method == "POST" and (
            path == "/api/data/readings" or path.startswith("/api/entities/asset/asset-1/callback/")
        ):
            if self.post_replies:
                return self.post_replies.pop(0)
            return httpx.Response(200, json={"status": "ok"})
        return httpx.Response(404, json={"detail": "Not Found"})

    def of(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    @property
    def schedule_gets(self) -> list[httpx.Request]:
        return self.of("GET", "/api/entities/asset/asset-1/battery-schedule")
