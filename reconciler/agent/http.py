"""The agent's small HTTP endpoint: ``/healthz``, ``/status`` (JSON), ``/metrics`` (Prometheus).

Plain asyncio streams: a handful of GET requests a minute from a monitoring system does
not justify a web framework on the site controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import click

from reconciler.status.model import CONDITION_ORDER, ConditionType, StatusSnapshot

log = logging.getLogger("flux.http")

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_S = 5.0

SnapshotFn = Callable[[], StatusSnapshot]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _ts(value: datetime | None) -> str:
    return "NaN" if value is None else f"{value.timestamp():.3f}"


def _num(value: float | None) -> str:
    return "NaN" if value is None else repr(float(value))


def render_metrics(snap: StatusSnapshot) -> str:
    """The status in the Prometheus text exposition format (version 0.0.4)."""
    site = _label(snap.site)
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, str]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{{{labels}}} {value}")

    conds = []
    for kind in CONDITION_ORDER:
        if not any(c.type == kind for c in snap.conditions):
            continue  # a status from before the condition existed
        cond = snap.condition(kind)
        for status in ("True", "False", "Unknown"):
            value = "1" if cond.status == status else "0"
            conds.append((f'site="{site}",type="{kind}",status="{status}"', value))
    metric("flux_condition", "gauge", "Agent conditions (1 for the current status).", conds)

    revs = []
    for role in ("applied", "observed", "attempted", "staged", "last_known_good"):
        sha = getattr(snap.revisions, role)
        if sha:
            revs.append((f'site="{site}",role="{role}",sha="{_label(sha)}"', "1"))
    metric("flux_revision_info", "gauge", "Revisions by role (applied = in control).", revs)

    base = f'site="{site}"'
    loop = snap.loop
    tel = snap.telemetry
    for name, mtype, help_text, value in (
        (
            "flux_last_fetch_timestamp_seconds",
            "gauge",
            "When the source last tried to fetch (Unix time, s).",
            _ts(snap.last_fetch_at),
        ),
        (
            "flux_last_successful_fetch_timestamp_seconds",
            "gauge",
            "When the source last fetched successfully (Unix time, s).",
            _ts(snap.last_successful_fetch_at),
        ),
        (
            "flux_fetch_failures_total",
            "counter",
            "Failed fetches since start.",
            str(snap.fetch_failures_total),
        ),
        ("flux_ticks_total", "counter", "Control ticks since start.", str(loop.ticks_total)),
        (
            "flux_safe_ticks_total",
            "counter",
            "Ticks that went to the safe state since start.",
            str(loop.safe_ticks_total),
        ),
        (
            "flux_last_tick_timestamp_seconds",
            "gauge",
            "When the last control tick ran (Unix time, s).",
            _ts(loop.last_tick_at),
        ),
        (
            "flux_setpoint_kw",
            "gauge",
            "Last battery setpoint written, kW (+ discharge).",
            "NaN" if loop.last_setpoint_kw is None else repr(float(loop.last_setpoint_kw)),
        ),
        (
            "flux_safe_stop",
            "gauge",
            "1 while the last tick went to the safe state (battery held at 0 kW).",
            str(int(loop.safe_stop)),
        ),
        (
            "flux_site_power_kw",
            "gauge",
            "Grid meter power the last tick decided on, kW (+ import).",
            _num(loop.site_power_kw),
        ),
        (
            "flux_site_import_limit_kw",
            "gauge",
            "The site file's import limit, kW.",
            _num(loop.site_import_limit_kw),
        ),
        (
            "flux_site_export_limit_kw",
            "gauge",
            "The site file's export limit, kW (positive).",
            _num(loop.site_export_limit_kw),
        ),
        (
            "flux_outbox_size",
            "gauge",
            "Telemetry rows waiting in the outbox.",
            "NaN" if loop.outbox_size is None else str(loop.outbox_size),
        ),
        (
            "flux_health_gate_passed_ticks",
            "gauge",
            "Healthy ticks of the staged revision so far.",
            str(snap.health_gate_passed),
        ),
        (
            "flux_health_gate_required_ticks",
            "gauge",
            "Healthy ticks a staged revision needs.",
            str(snap.health_gate_required),
        ),
        (
            "flux_quarantined_revisions",
            "gauge",
            "Revisions quarantined by the health gate.",
            str(len(snap.quarantined)),
        ),
        ("flux_suspended", "gauge", "1 while applying is suspended.", str(int(snap.suspended))),
        (
            "flux_telemetry_last_success_timestamp_seconds",
            "gauge",
            "When an upload to the database last got through (Unix time, s).",
            _ts(tel.last_success_at),
        ),
        (
            "flux_telemetry_upload_failures_total",
            "counter",
            "Failed uploads (and rollup refreshes) since start.",
            str(tel.upload_failures_total),
        ),
        (
            "flux_telemetry_consecutive_failures",
            "gauge",
            "Failed uploads since the last one that got through.",
            str(tel.consecutive_failures),
        ),
        (
            "flux_outbox_pending_rows",
            "gauge",
            "Records in the outbox waiting to be uploaded.",
            str(tel.pending_rows),
        ),
        (
            "flux_outbox_alert_rows",
            "gauge",
            "The site's telemetry.outbox_alert_rows: more pending rows is a backlog.",
            _num(tel.alert_rows),
        ),
        (
            "flux_outbox_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest record waiting in the outbox, s.",
            "NaN" if tel.oldest_pending_age_s is None else repr(float(tel.oldest_pending_age_s)),
        ),
    ):
        metric(name, mtype, help_text, [(base, value)])

    if snap.tasks:
        metric(
            "flux_side_task_restarts_total",
            "counter",
            "Restarts of a side task (source, uploader, notifier, markets) since start.",
            [(f'{base},task="{_label(t.name)}"', str(t.restarts)) for t in snap.tasks],
        )

    if snap.markets:
        feeds = [(f'{base},source="{_label(m.source)}"', m) for m in snap.markets]
        metric(
            "flux_market_up",
            "gauge",
            "1 while a market API's last call gave usable data.",
            [(labels, str(int(m.ok))) for labels, m in feeds],
        )
        metric(
            "flux_market_consecutive_failures",
            "gauge",
            "Failed calls to a market API since its last success.",
            [(labels, str(m.consecutive_failures)) for labels, m in feeds],
        )
        metric(
            "flux_market_last_success_timestamp_seconds",
            "gauge",
            "When a market API last gave usable data (Unix time, s).",
            [(labels, _ts(m.last_success_at)) for labels, m in feeds],
        )
    return "\n".join(out) + "\n"


def _healthz(snap: StatusSnapshot) -> tuple[int, str]:
    """200/503 on Ready alone (control); the body also says how telemetry and the side
    tasks are, which never make the agent unready (see ConditionType)."""
    ready = snap.condition(ConditionType.READY)
    body = f"{'ok' if snap.ready else 'not ready'}: {ready.reason}: {ready.message}\n"
    for kind in (ConditionType.TELEMETRY_READY, ConditionType.TASKS_RUNNING):
        for cond in snap.conditions:
            if cond.type == kind:
                body += f"{kind}={cond.status} {cond.reason}: {cond.message}\n"
    return (200 if snap.ready else 503), body


class PortInUse(click.ClickException):
    """The status endpoint's address cannot be listened on. Exit code 4."""

    exit_code = 4

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot serve the status endpoint on {host}:{port}: {reason}; is another agent "
            "running there? Choose another with --http-port (0 picks a free one)"
        )


class StatusServer:
    """Serves a status snapshot over HTTP. ``port`` 0 picks a free port (see ``.port``)."""

    def __init__(self, snapshot: SnapshotFn, host: str = "127.0.0.1", port: int = 9464) -> None:
        self._snapshot = snapshot
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Start listening; PortInUse (exit 4) when the address cannot be listened on."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise PortInUse(self.host, self.port, exc.strerror or str(exc)) from None
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        log.info("status endpoint on http://%s:%d/", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, serve until ``stop`` is set, close."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    def route(self, method: str, target: str) -> tuple[int, str, str]:
        """(status, content type, body) for a request."""
        path = target.split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return 405, text, "only GET and HEAD are served\n"
        if path == "/healthz":
            code, body = _healthz(self._snapshot())
            return code, text, body
        if path == "/status":
            return 200, "application/json", self._snapshot().model_dump_json(indent=2) + "\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(self._snapshot())
        return 404, text, "not found: try /healthz, /status or /metrics\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=READ_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > MAX_REQUEST_BYTES:
                code, ctype, body = 400, "text/plain; charset=utf-8", "request too large\n"
                method = "GET"
            else:
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                    code, ctype, body = 400, "text/plain; charset=utf-8", "bad request line\n"
                    method = "GET"
                else:
                    method, target = parts[0], parts[1]
                    try:
                        code, ctype, body = self.route(method, target)
                    except Exception as exc:  # a status bug must not take the endpoint down
                        log.exception("status endpoint failed")
                        code, ctype, body = 503, "text/plain; charset=utf-8", f"error: {exc}\n"
            payload = body.encode("utf-8")
            reason = _REASONS.get(code, "Error")
            header = (
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(header.encode("latin-1") + (b"" if method == "HEAD" else payload))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
