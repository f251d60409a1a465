"""Operator controls through the CLI commands, against a real source and a running loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.agent.lock import BatteryLock, BatteryLockHeld, lock_holder, refuse_if_agent_running
from reconciler.agent.operator import reconcile, resume, status, suspend
from reconciler.clock import ManualClock, WallClock
from reconciler.source.controller import GitSource
from reconciler.status.model import ConditionType as C
from tests.source.conftest import (
    DEMO_TEXT,
    SourceFactory,
    Upstream,
    demo_variant,
    healthy,
    make_settings,
    running_on,
)


async def test_suspend_stops_applying_and_resume_applies(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")

    result = CliRunner().invoke(
        suspend, ["--state-dir", str(state_dir), "--reason", "maintenance visit"]
    )
    assert result.exit_code == 0, result.output
    assert "no new revision is applied" in result.output
    newer = upstream.commit(demo_variant(44), "while suspended")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == good
    snap = source.status().snapshot()
    assert snap.suspended and "maintenance visit" in (snap.suspended_reason or "")
    assert snap.revisions.observed == newer
    applied = source.status().condition(C.APPLIED)
    assert (applied.status, applied.reason) == ("False", "Suspended")
    # control continues: ticks are still fine and Ready says why nothing new is applied
    source.observe_tick(healthy(clock))
    ready = source.status().condition(C.READY)
    assert ready.status == "True" and "maintenance visit" in ready.message

    result = CliRunner().invoke(resume, ["--state-dir", str(state_dir)])
    assert result.exit_code == 0 and "resumed" in result.output
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == newer
    assert not source.status().snapshot().suspended


async def test_status_command_prints_the_truth(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    runner = CliRunner()
    missing = runner.invoke(status, ["--state-dir", str(state_dir)])
    assert missing.exit_code == 2
    assert "no status file" in missing.output

    source, good = await running_on(upstream, make_source, clock, "good")
    upstream.commit(DEMO_TEXT.replace("  tick_s: 4\n", "  tick_s: -4\n"), "bad")
    await source.sync_once()

    with BatteryLock(state_dir):
        table = runner.invoke(status, ["--state-dir", str(state_dir)])
        assert table.exit_code == 0, table.output
        for word in ("SourceReady", "Validated", "Invalid", "ValidationFailed", good, "running"):
            assert word in table.output
        as_json = runner.invoke(status, ["--state-dir", str(state_dir), "-o", "json"])
        data = json.loads(as_json.output)
        assert data["agent_running"] is True and data["agent_pid"] == os.getpid()
        assert data["revisions"]["applied"] == good
        kinds = {c["type"]: c for c in data["conditions"]}
        assert kinds["Validated"]["status"] == "False"
        assert kinds["Validated"]["message"].startswith("sites/demo.yaml:")
        assert len(data["transitions"]) <= 10
    # with no agent holding the lock the command says so and exits 1
    stopped = runner.invoke(status, ["--state-dir", str(state_dir)])
    assert stopped.exit_code == 1 and "NOT RUNNING" in stopped.output


async def test_reconcile_request_is_noticed_by_the_running_source(
    upstream: Upstream, state_dir: Path
) -> None:
    first = upstream.commit(DEMO_TEXT, "first")
    settings = make_settings(upstream, state_dir, interval_s=3600)
    source = GitSource(settings, clock=WallClock())
    stop = asyncio.Event()
    runner = CliRunner()
    assert runner.invoke(reconcile, ["--state-dir", str(state_dir)]).exit_code == 1
    with BatteryLock(state_dir):
        task = asyncio.create_task(source.run(stop))
        try:
            await wait_for(lambda: source.status().snapshot().revisions.observed == first)
            second = upstream.commit(demo_variant(45), "second")
            result = await asyncio.to_thread(
                runner.invoke, reconcile, ["--state-dir", str(state_dir), "--timeout", "20"]
            )
            assert result.exit_code == 0, result.output
            assert "SourceReady=True" in result.output
            assert source.status().snapshot().revisions.observed == second
            current = source.current()
            assert current is not None and current.sha == second
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def wait_for(check: object, limit_s: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.05)


HOLDER = """
import sys, time
from pathlib import Path
from reconciler.agent.lock import BatteryLock
with BatteryLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_the_battery_lock_names_the_agent_holding_it(state_dir: Path) -> None:
    assert lock_holder(state_dir) is None
    refuse_if_agent_running(state_dir)  # free: no error
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        assert lock_holder(state_dir) == proc.pid
        with pytest.raises(BatteryLockHeld) as info:
            refuse_if_agent_running(state_dir)
        assert f"the agent (pid {proc.pid}) holds the battery lock" in str(info.value.message)
        assert "--shadow" in info.value.message and info.value.exit_code == 3
        with pytest.raises(BatteryLockHeld):
            BatteryLock(state_dir).acquire()
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(10)
    assert lock_holder(state_dir) is None
    with BatteryLock(state_dir) as lock:
        assert lock.held and lock_holder(state_dir) == os.getpid()
    assert lock_holder(state_dir) is None
