"""Simulated market APIs: Modo, Elexon and Axle over HTTP on loopback, shaped as docs/domain.md
documents them, so `flux agent run` can be exercised end to end with its live clients and
no internet (`flux sim SITE --markets PORT`).

Prices and NIV are January 2024's GB values (BMRS data) replayed on the simulator's clock
(:class:`~reconciler.markets.memory.ReplayImbalanceFeed`, wrapped onto any date). Modo
serves the current and previous settlement period as live estimates; Elexon serves the
periods of a settlement date that have ended (settled values appear after the period).
Axle accepts any login, serves a schedule built from ``--axle-dispatch`` windows (local
time, every day) and counts the delivery readings it receives.

A small threaded stdlib HTTP server: the simulator's asyncio loop serves Modbus, this runs
beside it and only reads the clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_args
from zoneinfo import ZoneInfo

from reconciler.clock import Clock
from reconciler.control.periods import SettlementPeriod, period_at, periods_in_day
from reconciler.control.types import AxleAction
from reconciler.markets.memory import ReplayImbalanceFeed

#: £/MWh per p/kWh (the APIs speak £/MWh; Flux's feeds p/kWh).
GBP_PER_MWH = 10.0
TOKEN = "simulated-axle-token"


@dataclass(frozen=True)
class Dispatch:
    """An Axle step repeated every local day: ``start``-``end`` local time, one action."""

    start: time
    end: time
    action: AxleAction
    allow_deviation: bool = False

    @classmethod
    def parse(cls, text: str) -> Dispatch:
        """``HH:MM-HH:MM ACTION`` (e.g. ``17:00-17:30 discharge_max``); ValueError says
        what is wrong."""
        try:
            span, action = text.split()
            first, last = (time.fromisoformat(part) for part in span.split("-"))
        except ValueError:
            raise ValueError(
                f"{text!r}: write HH:MM-HH:MM ACTION, e.g. '17:00-17:30 discharge_max'"
            ) from None
        actions: dict[str, AxleAction] = {a: a for a in get_args(AxleAction)}
        if action not in actions:
            raise ValueError(f"{text!r}: the action is one of {', '.join(actions)}")
        if last <= first:
            raise ValueError(f"{text!r}: the end must be after the start (same day)")
        return cls(first, last, actions[action])


class MarketSimulator:
    """Serves the three APIs under ``/modo``, ``/elexon`` and ``/axle`` on one port."""

    def __init__(
        self,
        clock: Clock,
        *,
        timezone: str = "Europe/London",
        dispatches: Sequence[Dispatch] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.dispatches = list(dispatches)
        self.feed = ReplayImbalanceFeed.january_2024()
        self.readings_received = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flux-sim-markets", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MarketSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def base_url(self, api: str) -> str:
        """The ``base_url`` a site file gives for ``api`` (modo, elexon or axle)."""
        return f"http://{self.host}:{self.port}/{api}"

    # ------------------------------------------------------------------ the APIs

    def _values(self, period: SettlementPeriod) -> tuple[float, float] | None:
        """(price £/MWh, NIV MWh) of a period, or None outside the data."""
        at = period.start + timedelta(minutes=15)
        price, niv = self.feed.imbalance_price(at), self.feed.imbalance_volume(at)
        if price is None or niv is None:
            return None
        return price.value * GBP_PER_MWH, niv.value

    def modo(self, path: str) -> tuple[int, Any]:
        field = {"system-price-live": 0, "niv-live": 1}.get(path)
        if field is None:
            return 404, {"detail": "Not Found"}
        current = period_at(self.clock.now())
        results = []
        for period in (current.previous(), current):
            values = self._values(period)
            if values is not None:
                name, digits = (("system_price", 2), ("niv", 3))[field]
                results.append(
                    {
                        "date": period.day.isoformat(),
                        "settlement_period": period.number,
                        name: round(values[field], digits),
                    }
                )
        return 200, {"results": results}

    def elexon(self, path: str) -> tuple[int, Any]:
        prefix = "balancing/settlement/system-prices/"
        if not path.startswith(prefix):
            return 404, {"error": "not found"}
        try:
            day = date.fromisoformat(path.removeprefix(prefix).split("/")[0])
        except ValueError:
            return 400, {"error": "settlementDate must be yyyy-MM-dd"}
        now = self.clock.now()
        data = []
        for number in range(1, periods_in_day(day) + 1):
            period = SettlementPeriod(day, number)
            values = self._values(period)
            if period.end > now or values is None:
                continue  # settled only once the period has ended
            price, niv = values
            data.append(
                {
                    "settlementDate": day.isoformat(),
                    "settlementPeriod": number,
                    "startTime": period.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "createdDateTime": now.isoformat(),
                    "systemSellPrice": round(price, 2),
                    "systemBuyPrice": round(price, 2),
                    "netImbalanceVolume": round(niv, 3),
                }
            )
        return 200, {"data": data}

    def axle_schedule(self) -> dict[str, Any]:
        """Today's and tomorrow's steps that have not ended (local windows)."""
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        steps = []
        for day in (today, today + timedelta(days=1)):
            for d in self.dispatches:
                start = datetime.combine(day, d.start, tzinfo=self.tz)
                end = datetime.combine(day, d.end, tzinfo=self.tz)
                if end > now:
                    steps.append(
                        {
                            "start_timestamp": start.isoformat(),
                            "end_timestamp": end.isoformat(),
                            "action": d.action,
                            "allow_deviation": d.allow_deviation,
                        }
                    )
        return {"schedule_steps": steps}

    def axle(self, method: str, path: str, body: bytes, authorized: bool) -> tuple[int, Any]:
        if method == "POST" and path == "auth/token-form":
            return 200, {"access_token": TOKEN, "token_type": "bearer"}
        if not authorized:
            return 401, {"detail": "Could not validate credentials"}
        if method == "GET" and path.startswith("entities/asset/"):
            if path.endswith("/battery-schedule"):
                return 200, self.axle_schedule()
            return 404, {"detail": "Not Found"}
        if method == "POST" and path == "data/readings":
            try:
                readings = json.loads(body)["readings"]
            except (ValueError, KeyError, TypeError):
                return 422, {"detail": "expected {'readings': [...]}"}
            with self._lock:
                self.readings_received += len(readings)
            return 200, {"status": "ok"}
        if method == "POST" and "/callback/" in path:
            return 200, {"status": "ok"}
        return 404, {"detail": "Not Found"}

    def route(self, method: str, target: str, body: bytes, auth: str) -> tuple[int, Any]:
        path = target.split("?", 1)[0].strip("/")
        api, _, rest = path.partition("/")
        with self._lock:
            self.requests += 1
        if api == "modo" and method == "GET":
            return self.modo(rest)
        if api == "elexon" and method == "GET":
            return self.elexon(rest)
        if api == "axle":
            return self.axle(method, rest, body, auth == f"Bearer {TOKEN}")
        return 404, {"detail": "try /modo, /elexon or /axle"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                code, payload = sim.route(
                    self.command, self.path, body, self.headers.get("Authorization", "")
                )
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return  # the simulator's status lines say enough

        return Handler
