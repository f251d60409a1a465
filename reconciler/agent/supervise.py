"""Supervision of the agent's side tasks (source, uploader, notifier, markets).

A side task that raises is restarted after a backoff (1 s, doubling, at most 60 s), and
the TasksRunning condition says which is down and why meanwhile. One that keeps failing
(more than ``max_restarts`` failures within ``window_s``) is not a transient: the agent
then stops with :data:`EXIT_SIDE_TASK_FAILED`, so that systemd restarts the whole process
(``Restart=on-failure``) and a fresh start can clear whatever state the task broke on.
Control itself is never stopped by a side task failing, only by that deliberate exit;
the battery's own heartbeat timeout holds it safe until the agent is back.

Backoffs and windows are wall time (not the agent's clock, which a demo speeds up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reconciler.logs import log_event
from reconciler.redact import redact
from reconciler.status.model import SideTaskStatus
from reconciler.stopping import sleep_or_stop

log = logging.getLogger("flux.agent")

#: `flux agent run`'s exit code when a side task kept failing (systemd restarts it).
EXIT_SIDE_TASK_FAILED = 5

TaskFactory = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Supervision:
    """How side tasks are restarted (s, wall time)."""

    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 600.0


@dataclass
class TaskState:
    name: str
    running: bool = True
    finished: bool = False  # returned by itself (e.g. the notifier without a watchdog)
    restarts: int = 0
    last_error: str | None = None
    restart_in_s: float | None = None
    failures: deque[float] = field(default_factory=deque)  # monotonic instants

    def public(self) -> SideTaskStatus:
        return SideTaskStatus(
            name=self.name, running=self.running, restarts=self.restarts, last_error=self.last_error
        )


class Supervisor:
    """Runs side tasks, restarting them as :class:`Supervision` says; ``on_change`` is
    called (on the event loop) whenever a task goes down, comes back, or is given up."""

    def __init__(
        self,
        policy: Supervision | None = None,
        on_change: Callable[[Supervisor], None] | None = None,
    ) -> None:
        self.policy = policy or Supervision()
        self.on_change = on_change
        self.tasks: dict[str, TaskState] = {}
        self.gave_up: TaskState | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_SIDE_TASK_FAILED if self.gave_up is not None else 0

    def register(self, *names: str) -> None:
        """Name the tasks about to start, so the status lists them from the start."""
        for name in names:
            self.tasks.setdefault(name, TaskState(name))

    def down(self) -> list[TaskState]:
        return [t for t in self.tasks.values() if not t.running]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    async def supervise(self, name: str, start: TaskFactory, stop: asyncio.Event) -> None:
        """Run ``start()`` until it returns or ``stop`` is set, restarting it when it
        raises; after too many failures, set ``stop`` (the agent exits non-zero)."""
        state = self.tasks.setdefault(name, TaskState(name))
        policy = self.policy
        while not stop.is_set():
            try:
                await start()
                state.finished = True
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a side task failing must never stop control
                error = redact(str(exc) or type(exc).__name__)
            now = time.monotonic()
            state.failures.append(now)
            while state.failures and now - state.failures[0] > policy.window_s:
                state.failures.popleft()
            state.running = False
            state.last_error = error
            if len(state.failures) > policy.max_restarts:
                self.gave_up = state
                state.restart_in_s = None
                log_event(
                    log,
                    "task_gave_up",
                    level=logging.CRITICAL,
                    task=name,
                    error=error,
                    failures=len(state.failures),
                    window_s=policy.window_s,
                    exit_code=EXIT_SIDE_TASK_FAILED,
                )
                self._changed()
                stop.set()
                return
            delay = min(
                policy.max_backoff_s, policy.initial_backoff_s * 2 ** (len(state.failures) - 1)
            )
            state.restart_in_s = delay
            log_event(
                log,
                "task_failed",
                level=logging.ERROR,
                task=name,
                error=error,
                restart_in_s=delay,
                failures=len(state.failures),
            )
            self._changed()
            if await sleep_or_stop(delay, stop):
                return
            state.running = True
            state.restarts += 1
            state.restart_in_s = None
            log_event(log, "task_restarted", task=name, restarts=state.restarts)
            self._changed()

    def describe(self) -> tuple[bool, str, str]:
        """(all running, reason, message) for the TasksRunning condition."""
        if self.gave_up is not None:
            t = self.gave_up
            return (
                False,
                "GaveUp",
                f"{t.name} failed {len(t.failures)} times within {self.policy.window_s:g} s "
                f"(last: {t.last_error}); the agent exits with code {EXIT_SIDE_TASK_FAILED} "
                "for systemd to restart it",
            )
        down = self.down()
        if down:
            parts = [
                f"{t.name} failed ({t.last_error}); restarting in {t.restart_in_s:g} s"
                if t.restart_in_s is not None
                else f"{t.name} failed ({t.last_error})"
                for t in down
            ]
            return False, "Restarting", "; ".join(parts)
        restarted = [f"{t.name} restarted {t.restarts}x" for t in self.tasks.values() if t.restarts]
        names = ", ".join(t.name for t in self.tasks.values() if not t.finished) or "none"
        return (
            True,
            "Running",
            f"{names} running" + (f" ({', '.join(restarted)})" if restarted else ""),
        )
