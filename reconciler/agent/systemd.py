"""systemd integration: ``READY=1``, the watchdog fed while the control loop is on time,
``STOPPING=1``. The agent's status model is in :mod:`reconciler.status.model`."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from reconciler.logs import log_event
from reconciler.status.model import AgentStatus, ConditionType
from reconciler.stopping import sleep_or_stop

log = logging.getLogger("flux.status")

# --------------------------------------------------------------------------- systemd


def sd_notify(message: str) -> bool:
    """Send ``message`` (e.g. ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``) to systemd.

    Speaks the sd_notify datagram protocol over ``$NOTIFY_SOCKET`` directly, so no library is
    needed. Returns False when not run under systemd (no socket) or the send fails.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to send ``WATCHDOG=1`` (half of systemd's WatchdogSec), or None if unset."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 / 2 if value > 0 else None


class LoopProgress:
    """When the control loop last finished an iteration (a tick, or an idle wait for a
    first revision), in monotonic seconds, and how long the next one may take.

    The watchdog asks :meth:`on_time`: a loop is alive while its last iteration ended no
    longer ago than its own interval plus a grace for a slow tick (device timeouts). So
    a ``tick_s`` longer than half of ``WatchdogSec`` is not a hung loop.
    """

    #: Extra time (s) a tick may take beyond its interval: reads that time out, a retry.
    GRACE_S = 10.0

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._at = monotonic()
        self._interval_s = 1.0

    def mark(self, interval_s: float) -> None:
        """An iteration ended; the next is due within ``interval_s`` seconds."""
        self._at = self._monotonic()
        self._interval_s = interval_s

    def overdue_s(self) -> float:
        """Seconds past the expected end of the next iteration (<= 0: on time)."""
        return self._monotonic() - self._at - self._interval_s - self.GRACE_S

    def on_time(self) -> bool:
        return self.overdue_s() <= 0


class SystemdNotifier:
    """Tells systemd the agent is up (``READY=1``) and alive (``WATCHDOG=1``).

    The watchdog is fed only while the control loop completes its iterations within
    their expected time (:class:`LoopProgress`), so a hung control loop is restarted by
    systemd (``WatchdogSec=`` in the unit), and a healthy slow one is not.
    """

    def __init__(self, status: AgentStatus, progress: LoopProgress) -> None:
        self._status = status
        self._progress = progress

    def ready(self) -> bool:
        return sd_notify("READY=1\nSTATUS=" + self._status_line())

    def beat(self) -> bool:
        """Send ``WATCHDOG=1`` if the loop is on time; True if sent."""
        overdue = self._progress.overdue_s()
        if overdue > 0:
            log_event(
                log,
                "watchdog_withheld",
                level=logging.ERROR,
                overdue_s=round(overdue, 1),
                why="the control loop has not completed an iteration in its expected time",
            )
            return False
        return sd_notify("WATCHDOG=1\nSTATUS=" + self._status_line())

    def _status_line(self) -> str:
        ready = self._status.condition(ConditionType.READY)
        return f"{ready.reason}: {ready.message}".replace("\n", " ")[:200]

    async def run(self, stop: asyncio.Event) -> None:
        """READY=1 now, then a beat every half WatchdogSec (wall time) until ``stop``."""
        self.ready()
        interval = watchdog_interval_s()
        if interval is None:
            return
        while not stop.is_set():
            if not await sleep_or_stop(interval, stop):
                self.beat()
        sd_notify("STOPPING=1")
