"""Production wiring of the agent: the one place where the real parts are put together.

The slow loop (desired-state source), the fast loop (reconcile), the uploader, the status
endpoint and the systemd notifier run as sibling tasks; a failure of any of them other
than the control loop never stops control: it is restarted with a backoff, and one that
keeps failing makes the agent exit non-zero for systemd to restart it (supervise.py).
Telemetry never holds up a stop: an upload in progress is aborted, and the final drain
has a time budget, after which what is left stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.agent.http import StatusServer
from reconciler.agent.lock import DeviceLock
from reconciler.agent.loop import ReconcileLoop, TickResult, is_shadow, observe_tick
from reconciler.agent.ports import Endpoint, Markets, Store, Upload
from reconciler.agent.supervise import Supervision, Supervisor
from reconciler.agent.systemd import LoopProgress, SystemdNotifier
from reconciler.agent.telemetry import KeepInStore, TelemetryReporter, site_identity
from reconciler.clock import Clock, sleep_unless_stopped
from reconciler.config.model import Site
from reconciler.devices.base import Battery, Meter
from reconciler.devices.factory import open_site_devices
from reconciler.logs import log_event
from reconciler.markets.live import LiveMarkets
from reconciler.planning.runner import Planning
from reconciler.source.controller import DesiredStateSource, Revision, TickHealth
from reconciler.status.model import AgentStatus, ConditionType
from reconciler.status.record import StatusRecord
from reconciler.stopping import sleep_or_stop
from reconciler.telemetry.uploader import UploadResult

log = logging.getLogger("flux.agent")

#: How long (s) the loop waits for a first revision before it looks again.
IDLE_WAIT_S = 1.0

DevicesFactory = Callable[[Site, Clock], tuple[Battery, Mapping[str, Meter]]]
SideTask = Callable[[asyncio.Event], Awaitable[None]]
"""A side task: runs until the event is set."""

#: How long side tasks get to end after stop before they are cancelled, s.
SIDE_TASK_GRACE_S = 5.0


def default_devices(site: Site, clock: Clock) -> tuple[Battery, Mapping[str, Meter]]:
    battery, meters = open_site_devices(site, clock=clock)
    return battery, meters


def device_key(site: Site) -> str:
    """What, if it changes between revisions, means the devices must be reopened."""
    return site.devices.model_dump_json() + site.model_dump_json(include={"profiles"})


def tick_health(site: Site, result: TickResult, sha: str | None) -> TickHealth:
    """What the health gate judges of one tick of ``site``: the battery and the grid meter
    (control uses no other device; the others are named, not judged)."""
    errors = result.observation.errors
    battery, grid = site.devices.battery.name, site.grid_meter_name
    return TickHealth(
        at=result.at,
        battery_ok=battery not in errors and result.write_error is None,
        grid_ok=grid not in errors and grid in result.observation.meters,
        tracking_ok=result.tracking_ok,
        envelope_ok=result.envelope_ok,
        detail=result.write_error or result.decision.reason,
        sha=sha,
        other_errors=tuple(f"{n}: {e}" for n, e in errors.items() if n not in (battery, grid)),
    )


@dataclass
class AgentOptions:
    """How `flux agent run` (and `flux demo`) want the agent run."""

    shadow: bool | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = 9464
    upload_interval_s: float = 10.0
    #: Where battery locks are taken (one writer per battery); None takes none (tests,
    #: and shadow agents, which never write).
    lock_dir: Path | None = None
    #: The final drain at stop gives up after this long (s); what is left stays in the
    #: outbox. Well inside systemd's TimeoutStopSec (20 s in deploy/flux-agent.service).
    final_upload_budget_s: float = 10.0


class Agent:
    """The site agent: control on the current revision, whatever the source is doing."""

    def __init__(
        self,
        source: DesiredStateSource,
        *,
        clock: Clock,
        store: Store,
        options: AgentOptions | None = None,
        signals: Markets | None = None,
        devices: DevicesFactory = default_devices,
        uploader: Upload | None = None,
        status: AgentStatus | None = None,
        endpoint: Endpoint | None = None,
        notifier: SideTask | None = None,
        progress: LoopProgress | None = None,
        supervision: Supervision | None = None,
        side_tasks: Mapping[str, SideTask] | None = None,
        on_tick: Callable[[TickResult], None] | None = None,
    ) -> None:
        """Every collaborator is a keyword argument typed by its port (agent/ports.py);
        what is not given is the production part, built in the one block below.

        ``store``: where everything is recorded (the outbox); ``signals``: the market
        signals (default: the live APIs the site file names, recording to ``store``; a
        Replay stands in for them); ``uploader``: default keeps everything in the store
        (pass a ``telemetry.uploader.Uploader`` to upload); ``status``: the one the source
        sets its conditions on; ``endpoint``: the status server (default: on
        ``options.http_port``, none if that is None); ``notifier``: the systemd notifier
        fed by ``progress``; ``side_tasks`` run beside the built-in ones, supervised the
        same way; ``on_tick`` sees every tick's result."""
        self.source = source
        self.clock = clock
        self.store = store
        self.options = options or AgentOptions()
        # ---- collaborators: given, or the production defaults
        self.status = status or source.status()
        # The plan for an `optimise` entry rides with the market signals (planning/).
        self.markets: Markets = Planning(signals or LiveMarkets(clock=clock, sink=store))
        self.uploader: Upload = uploader or KeepInStore(store)
        self.endpoint: Endpoint | None = endpoint
        if endpoint is None and self.options.http_port is not None:
            self.endpoint = StatusServer(
                self.status.snapshot, host=self.options.http_host, port=self.options.http_port
            )
        #: What the systemd watchdog is fed by: iterations of the control loop on time.
        self.progress = progress or LoopProgress()
        self._notifier = notifier or SystemdNotifier(self.status, self.progress).run
        self.supervisor = Supervisor(supervision, on_change=self._tasks_changed)
        self._devices_factory = devices
        self._side_tasks = dict(side_tasks or {})
        self._on_tick = on_tick
        self.telemetry = TelemetryReporter(self.status, store, self.uploader)
        # ---- state
        self.loop: ReconcileLoop | None = None
        self._device_key: str | None = None
        self._revision: Revision | None = None
        self._last_status_at: datetime | None = None
        self.final_upload: UploadResult | None = None
        self._battery_lock: DeviceLock | None = None

    # ------------------------------------------------------------------ revision

    def _site(self) -> tuple[Site, str | None]:
        assert self._revision is not None
        return self._revision.site, self._revision.sha

    async def _follow_revision(self, revision: Revision) -> None:
        """Switch to ``revision`` between ticks, reopening devices only if they changed."""
        if self._revision is not None and revision.sha == self._revision.sha:
            return
        previous = self._revision
        self._revision = revision
        self.markets.configure(revision.site)
        key = device_key(revision.site)
        if self.loop is None or key != self._device_key:
            self._claim_battery(revision.site)
            battery, meters = self._devices_factory(revision.site, self.clock)
            if self.loop is None:
                self.loop = ReconcileLoop(
                    site_fn=self._site,
                    battery=battery,
                    meters=meters,
                    clock=self.clock,
                    sink=self.store,
                    signals=self.markets,
                    shadow=self.options.shadow,
                    on_tick=self._on_tick,
                )
            else:
                await self.loop.replace_devices(battery, meters)
            self._device_key = key
        try:
            self.store.add_revision(
                revision.site.site.id,
                revision.sha,
                self.clock.now(),
                state="in_control",
                conditions=self._conditions(),
                message=f"from {revision.source}",
                identity=site_identity(revision.site),
            )
        except Exception as exc:  # the revision runs whether or not it can be recorded
            log_event(log, "revision_record_failed", level=logging.ERROR, error=str(exc))
        log_event(
            log,
            "revision_in_control",
            sha=revision.sha,
            source=revision.source,
            previous=previous.sha if previous else None,
            site=revision.site.site.id,
        )

    def _claim_battery(self, site: Site) -> None:
        """Take the battery's lock before its devices are opened (BatteryInUse, exit 3,
        names the holder), then let go of the previous battery's. Not in shadow mode."""
        lock_dir = self.options.lock_dir
        shadow = is_shadow(site, self.options.shadow)
        if lock_dir is None or shadow:
            return
        dev = site.devices.battery
        lock = DeviceLock(lock_dir, dev.host, dev.port, dev.unit_id)
        if self._battery_lock is not None and self._battery_lock.path == lock.path:
            return
        lock.acquire(f"the agent (pid {os.getpid()}, site {site.site.id})")
        previous, self._battery_lock = self._battery_lock, lock
        if previous is not None:
            previous.release()

    def _conditions(self) -> dict[str, Any]:
        return self.status.snapshot().model_dump(mode="json")

    async def _heartbeat(self, site: Site, at: datetime) -> None:
        """The agent's status to the outbox every record interval (the fleet's view of
        which revision runs where, and why others were refused), with the battery's
        writable settings read back so `flux diff` can see a change made behind our back."""
        last = self._last_status_at
        if last is not None and (at - last).total_seconds() < site.telemetry.record_interval_s:
            return
        self._last_status_at = at
        snapshot = self.status.snapshot()
        assert self.loop is not None
        settings: dict[str, float] | None = None
        error: str | None = None
        try:
            settings = await self.loop.battery.read_settings()
        except Exception as exc:  # a failed read-back is reported, never fatal
            error = str(exc) or type(exc).__name__
        record = StatusRecord.of(snapshot, device_settings=settings, device_settings_error=error)
        self.store.add_status(site.site.id, at, record.model_dump(mode="json"))

    # ------------------------------------------------------------------ control

    async def step(self) -> TickResult | None:
        """One control iteration on the source's current revision: follow a new revision
        if there is one, tick, and report the tick to the health gate and the status.
        None when there is no revision to run yet."""
        revision = self.source.current()
        if revision is None:
            return None
        await self._follow_revision(revision)
        assert self.loop is not None
        result = await self.loop.tick()
        self.source.observe_tick(tick_health(revision.site, result, revision.sha))
        self.status.record_tick(
            at=result.at,
            decision_reason=result.decision.reason,
            setpoint_kw=result.decision.target_kw,
            outbox_size=self.store.pending(),
            safe=result.decision.safe_stop,
            site_power_kw=result.decision.site_power_kw,
            limits_kw=(revision.site.limits.site_import_kw, revision.site.limits.site_export_kw),
        )
        self._report_battery_settings(revision.site, result)
        self._observe_delivery(revision.site, result)
        self.status.set_markets(*self.markets.feed_status())
        self.status.set_frequency(self.loop.frequency.block)
        try:
            await self._heartbeat(revision.site, result.at)
        except Exception as exc:  # a store that refuses rows must not stop control
            log_event(log, "status_record_failed", level=logging.ERROR, error=str(exc))
        return result

    def _report_battery_settings(self, site: Site, result: TickResult) -> None:
        """The BatterySettings condition, from what the tick's read-back found. Only ticks
        that wrote say anything: the settings are read back after each write."""
        assert self.loop is not None
        status = self.status
        kind = ConditionType.BATTERY_SETTINGS
        if self.loop.is_shadow(site):
            status.set_condition(
                kind, "Unknown", "Shadow", "shadow mode: the battery's settings are not ours"
            )
        elif result.settings_error is not None:
            status.set_condition(
                kind, "False", "ReadBackFailed", f"cannot verify: {result.settings_error}"
            )
        elif result.settings_changed:
            listed = ", ".join(str(c) for c in result.settings_changed)
            status.set_condition(
                kind,
                "False",
                "Reapplied",
                f"found {listed} at {result.at:%H:%M:%S}Z and wrote them again (the battery "
                "restarted or left direct mode)",
            )
        elif result.written_kw is not None:
            status.set_condition(
                kind, "True", "AsDesired", "direct mode, ramps and heartbeat timeout as desired"
            )

    def _observe_delivery(self, site: Site, result: TickResult) -> None:
        """What the site and battery did, for the markets (observe_tick); not in shadow
        mode: the battery is not ours to report on."""
        assert self.loop is not None
        if not self.loop.is_shadow(site):
            observe_tick(self.markets, result)

    async def _control(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = self.clock.now()
            result = await self.step()
            if result is None:
                # Nothing valid to run yet (first boot, no last-known-good): the battery is
                # not commanded, so its own heartbeat timeout keeps it at 0 kW.
                self.progress.mark(IDLE_WAIT_S)
                await sleep_or_stop(IDLE_WAIT_S, stop)
                continue
            tick_s = self._site()[0].control.tick_s
            self.progress.mark(tick_s)
            await self._until_next_tick(started, tick_s, stop)

    async def _until_next_tick(self, started: datetime, tick_s: float, stop: asyncio.Event) -> None:
        """Wait for the next tick; while a frequency_response entry is active, run the
        loop's fast path meanwhile (grid frequency in, setpoint out, every fast interval)."""
        assert self.loop is not None
        next_at = started + timedelta(seconds=tick_s)
        while not stop.is_set():
            left = (next_at - self.clock.now()).total_seconds()
            fast = self.loop.fast_interval_s()
            if left <= 0:
                return
            if fast is None:
                # A stop wakes the wait: systemd's TimeoutStopSec is shorter than a tick.
                await sleep_unless_stopped(self.clock, left, stop)
                return
            began = self.clock.now()
            await self.loop.fast_tick()
            spent = (self.clock.now() - began).total_seconds()
            await sleep_unless_stopped(self.clock, max(0.0, min(left, fast - spent)), stop)

    async def run(self, stop: asyncio.Event) -> int:
        """Run everything until ``stop`` is set; then close devices and the outbox.
        Returns the exit code: 0, or EXIT_SIDE_TASK_FAILED when a side task kept failing
        (see supervise.py).

        The cleanup runs on every way out: a stop, a taken status port (PortInUse), a
        battery another agent drives (BatteryInUse), or any other error."""
        tasks: list[asyncio.Task[None]] = []
        try:
            if self.endpoint is not None:
                # First: a taken port is refused before anything else has started.
                await self.endpoint.start()
            side: dict[str, SideTask] = {
                "source": self.source.run,
                "uploader": self._upload,
                "notifier": self._notifier,
                "markets": self.markets.run,
            }
            side.update(self._side_tasks)
            self._telemetry_changed()
            self.supervisor.register(*side)
            tasks += [
                asyncio.create_task(self.supervisor.supervise(name, partial(work, stop), stop))
                for name, work in side.items()
            ]
            self._tasks_changed(self.supervisor)
            await self._control(stop)
        finally:
            stop.set()
            # The uploader aborts its upload at once; a task that does not end in time is
            # cancelled rather than holding up the stop.
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=SIDE_TASK_GRACE_S)
                for task in late:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if self.loop is not None:
                try:  # the last tick's frequency records, into the outbox
                    self.loop.flush_records()
                except Exception as exc:
                    log_event(log, "record_failed", level=logging.ERROR, error=str(exc))
            if self.uploader.database_url:
                # One last drain, so a clean stop leaves nothing behind that need not be;
                # within its budget, whatever does not make it stays in the outbox.
                result = await self.uploader.drain_async(
                    budget_s=self.options.final_upload_budget_s
                )
                self.final_upload = result
                log_event(
                    log,
                    "final_upload",
                    level=logging.INFO if result.ok else logging.WARNING,
                    ok=result.ok,
                    remaining=result.remaining,
                    error=result.error,
                )
                self.uploader.close()
            if self.endpoint is not None:
                await self.endpoint.close()
            if self.loop is not None:
                await self.loop.close()
            if self._battery_lock is not None:
                self._battery_lock.release()
            # The tick counters are flushed lazily (SD cards); the last word is written now.
            self.status.flush(force=True)
        return self.supervisor.exit_code

    async def _upload(self, stop: asyncio.Event) -> None:
        await self.uploader.run(
            stop,
            interval_s=self.options.upload_interval_s,
            on_result=lambda _result: self._telemetry_changed(),
        )

    def _telemetry_changed(self) -> None:
        revision = self.source.current()
        if revision is not None:  # the site file's mark for a backlog, as of now
            self.telemetry.alert_rows = revision.site.telemetry.outbox_alert_rows
        self.telemetry.update(self.clock.now())

    def _tasks_changed(self, supervisor: Supervisor) -> None:
        ok, reason, message = supervisor.describe()
        status = self.status
        status.set_condition(
            ConditionType.TASKS_RUNNING, "True" if ok else "False", reason, message
        )
        status.set_tasks([t.public() for t in supervisor.tasks.values()])
        uploader = supervisor.tasks.get("uploader")
        down = None if uploader is None or uploader.running else uploader
        self.telemetry.uploader_down = (
            None
            if down is None
            else f"the uploader task failed ({down.last_error})"
            + (f"; restarting in {down.restart_in_s:g} s" if down.restart_in_s else "")
        )
        self._telemetry_changed()
