"""Side tasks are supervised: one that fails is restarted with a backoff while control
goes on; one that keeps failing makes the agent end with a non-zero exit code (systemd
then restarts it), never by stopping control on its own."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest

from reconciler.agent.http import StatusServer
from reconciler.agent.run import Agent, AgentOptions
from reconciler.agent.supervise import EXIT_SIDE_TASK_FAILED, Supervision
from reconciler.clock import ManualClock
from reconciler.config import load_site
from reconciler.sim.simulator import SiteSimulator
from reconciler.status.model import ConditionType
from tests.rigs import file_agent, until
from tests.source.conftest import ROOT, START

GUARD_S = 60.0  # test-hang protection only
QUICK = Supervision(initial_backoff_s=0.01, max_backoff_s=0.05, max_restarts=3, window_s=60)


def _ticks(agent: Agent) -> int:
    return agent.loop.ticks if agent.loop is not None else 0


async def test_a_side_task_that_fails_once_is_restarted_and_works_after(tmp_path: Path) -> None:
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    starts: list[int] = []
    worked: list[int] = []
    agent_box: list[Agent] = []

    async def flaky(stop: asyncio.Event) -> None:
        starts.append(_ticks(agent_box[0]))
        if len(starts) == 1:
            raise sqlite3.OperationalError("database is locked")
        while not stop.is_set():  # the restarted task does its work
            worked.append(_ticks(agent_box[0]))
            await asyncio.sleep(0.01)

    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            options=AgentOptions(http_port=None),
            supervision=QUICK,
            side_tasks={"flaky": flaky},
        ) as rig,
    ):
        agent_box.append(rig.agent)
        task = asyncio.create_task(rig.agent.run(stop))
        await until(lambda: len(worked) >= 3, "the restarted task working")
        await until(lambda: _ticks(rig.agent) > worked[0] + 3, "control ticking on")
        status = rig.agent.source.status()
        tasks = status.condition(ConditionType.TASKS_RUNNING)
        assert (tasks.status, tasks.reason) == ("True", "Running")
        assert "flaky restarted 1x" in tasks.message
        down = [
            t
            for t in status.snapshot().transitions
            if t.type == ConditionType.TASKS_RUNNING and t.status == "False"
        ]
        assert down and "flaky failed (database is locked)" in down[-1].message
        stop.set()
        assert await asyncio.wait_for(task, GUARD_S) == 0
    assert len(starts) == 2
    assert rig.agent.supervisor.tasks["flaky"].restarts == 1


async def test_a_side_task_that_keeps_failing_ends_the_agent_non_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flux")
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    ticks_at_failure: list[int] = []
    agent_box: list[Agent] = []

    async def broken(stop: asyncio.Event) -> None:
        ticks_at_failure.append(_ticks(agent_box[0]))
        await asyncio.sleep(0.02)  # control gets the loop meanwhile
        raise RuntimeError("the feed's certificate expired")

    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            options=AgentOptions(http_port=None),
            supervision=QUICK,
            side_tasks={"broken": broken},
        ) as rig,
    ):
        agent_box.append(rig.agent)
        code = await asyncio.wait_for(rig.agent.run(stop), GUARD_S)
        status = rig.agent.source.status()
    assert code == EXIT_SIDE_TASK_FAILED != 0
    assert len(ticks_at_failure) == QUICK.max_restarts + 1  # the first run and 3 restarts
    # Control ticked on between the failures, all along.
    assert ticks_at_failure == sorted(ticks_at_failure)
    assert ticks_at_failure[-1] > ticks_at_failure[0]
    tasks = status.condition(ConditionType.TASKS_RUNNING)
    assert (tasks.status, tasks.reason) == ("False", "GaveUp")
    assert "certificate expired" in tasks.message and "exits with code 5" in tasks.message
    assert status.condition(ConditionType.READY).status == "True"  # control was fine
    gave_up = [r for r in caplog.records if r.getMessage() == "task_gave_up"]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.CRITICAL


async def test_the_endpoint_and_notifier_given_are_the_ones_run(tmp_path: Path) -> None:
    """The status endpoint and the notifier are collaborators like any other: the ones
    given are started first and closed last (the endpoint), and supervised (the
    notifier), with no port taken from options."""
    clock = ManualClock(START)
    site = load_site(ROOT / "sites" / "demo.yaml")
    stop = asyncio.Event()
    notified: list[int] = []
    agent_box: list[Agent] = []

    async def notifier(stop: asyncio.Event) -> None:
        notified.append(_ticks(agent_box[0]))
        await stop.wait()

    endpoint = StatusServer(lambda: agent_box[0].status.snapshot(), port=0)
    async with (
        SiteSimulator(site, clock=clock, ports="ephemeral") as sim,
        file_agent(
            tmp_path,
            sim,
            clock,
            options=AgentOptions(http_port=None),
            endpoint=endpoint,
            notifier=notifier,
        ) as rig,
    ):
        agent_box.append(rig.agent)
        task = asyncio.create_task(rig.agent.run(stop))
        await until(lambda: _ticks(rig.agent) >= 2, "control ticking")
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"http://127.0.0.1:{endpoint.port}/status")
        assert reply.status_code == 200
        assert reply.json()["loop"]["ticks_total"] >= 1
        assert len(notified) == 1  # started once, never restarted
        assert rig.agent.supervisor.tasks["notifier"].running
        stop.set()
        assert await asyncio.wait_for(task, GUARD_S) == 0
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{endpoint.port}/status")
