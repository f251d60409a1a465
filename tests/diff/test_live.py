"""`flux diff --live`: the devices read now over read-only Modbus (the simulator on
loopback), beside an agent that has been commanding them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import Result

from reconciler.agent.http import StatusServer
from tests.diff.conftest import World, invoke, variant
from tests.net import free_port
from tests.source.conftest import DEMO_TEXT


async def live(world: World, *args: str) -> Result:
    # The CLI runs its own event loop; the simulator serves from this one meanwhile.
    return await asyncio.to_thread(
        invoke,
        "diff",
        "demo",
        "--repo",
        str(world.repo),
        "--live",
        "--at",
        world.clock.now().isoformat(),
        *args,
    )


async def live_json(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    result = await live(world, "--output", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


async def test_live_read_of_a_site_in_order_has_no_drift_and_writes_nothing(
    world: World,
) -> None:
    await world.run(60)
    writes = len(world.sim.writes())
    result = await live(world)
    assert result.exit_code == 0, result.output
    assert "no drift (observed live)" in result.output
    assert "revision: not observable" in result.output
    assert len(world.sim.writes()) == writes  # read-only


async def test_live_shows_a_changed_register_and_an_unreachable_meter(world: World) -> None:
    await world.run(60)
    world.sim.plant.write("heartbeat_timeout", 60)
    world.sim.plant.write("ramp_down", 5.0)
    world.sim.faults.away("solar", 600)
    code, doc = await live_json(world)
    assert code == 1
    lines = {(d["category"], d["field"]): d for d in doc["drifts"]}
    assert set(lines) == {
        ("device", "heartbeat_timeout"),
        ("device", "ramp_down"),
        ("telemetry", "solar"),
    }
    assert lines[("device", "heartbeat_timeout")]["desired"] == "10 s"
    assert lines[("device", "heartbeat_timeout")]["observed"] == "60 s"
    assert lines[("device", "ramp_down")]["severity"] == "warning"
    assert "connect" in lines[("telemetry", "solar")]["reason"]


@pytest.mark.parametrize("initial_text", [variant(homes="250")], indirect=True)
async def test_live_sees_a_battery_that_left_direct_mode(world: World) -> None:
    await world.run(60)
    world.sim.plant.write("real_power_mode", 0)  # local control: the setpoint is ignored
    world.sim.clock.advance(2)  # the battery ramps to 0 kW under local control
    await world.sim.tick()
    code, doc = await live_json(world)
    assert code == 1
    lines = {(d["category"], d["field"]): d for d in doc["drifts"]}
    assert lines[("device", "real_power_mode")]["reason"].startswith("the battery left direct")
    assert "not in direct real-power mode" in lines[("operating", "setpoint")]["reason"]


async def test_live_compares_the_revision_the_agent_serves_on_its_status_endpoint(
    world: World,
) -> None:
    await world.source.sync_once()
    await world.run(60)
    server = StatusServer(world.source.status().snapshot, port=0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        result = await live(world, "--agent-url", url)
        assert result.exit_code == 0, result.output
        assert "revision: not observable" not in result.output

        world.commit(DEMO_TEXT.replace("ramp_up_kw_per_s: 100", "ramp_up_kw_per_s: 90"))
        code, doc = await live_json(world, "--agent-url", url)
        assert code == 1
        (line,) = [d for d in doc["drifts"] if d["category"] == "revision"]
        assert "has not fetched" in line["reason"]  # said by the agent's own status
    finally:
        await server.close()


async def test_live_without_the_agents_status_says_why(world: World) -> None:
    await world.run(60)
    code, doc = await live_json(world, "--agent-url", f"http://127.0.0.1:{free_port()}")
    assert code == 0, doc["drifts"]
    (note,) = [n for n in doc["notes"] if n.startswith("revision:")]
    assert "cannot read the agent's status at http://127.0.0.1:" in note
