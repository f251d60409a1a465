"""The health gate: what the revision controls, over the gate's window, with a stated
tolerance for transient read errors; its length from the site file unless overridden."""

from __future__ import annotations

from reconciler.clock import ManualClock
from reconciler.source.controller import GitSource
from reconciler.status.model import ConditionType as C
from tests.source.conftest import (
    DEMO_TEXT,
    SourceFactory,
    Upstream,
    demo_variant,
    healthy,
    running_on,
    tick,
)


def gating(text: str, ticks: int) -> str:
    """The site file with ``control.health_gate_ticks: ticks``."""
    assert "control:\n  tick_s: 4\n" in text
    return text.replace(
        "control:\n  tick_s: 4\n", f"control:\n  tick_s: 4\n  health_gate_ticks: {ticks}\n"
    )


async def staged_after_good(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, gate: int = 5
) -> tuple[GitSource, str, str]:
    """A last-known-good, then a new revision staged behind a ``gate``-tick gate (the
    site file's: no override)."""
    source, good = await running_on(upstream, make_source, clock, "good", health_gate_ticks=None)
    staged = upstream.commit(gating(demo_variant(60), gate), "new")
    await source.sync_once()
    assert source.current().sha == staged  # type: ignore[union-attr]
    return source, good, staged


def applied(source: GitSource) -> tuple[str, str, str]:
    c = source.status().condition(C.APPLIED)
    return c.status, c.reason, c.message


async def test_one_grid_meter_read_error_in_five_ticks_is_tolerated(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, _good, staged = await staged_after_good(upstream, make_source, clock)
    source.observe_tick(healthy(clock))
    source.observe_tick(tick(clock, grid_ok=False, detail="site read failed: timeout"))
    assert applied(source)[1] == "HealthGatePending"
    assert "1 of 1 tolerated read error" in applied(source)[2]
    for _ in range(3):
        source.observe_tick(healthy(clock))
    assert source.status().snapshot().revisions.last_known_good != staged
    source.observe_tick(healthy(clock))
    snap = source.status().snapshot()
    assert snap.revisions.last_known_good == staged and snap.quarantined == []


async def test_more_read_errors_than_tolerated_fail_the_gate(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good, staged = await staged_after_good(upstream, make_source, clock)
    source.observe_tick(tick(clock, grid_ok=False, detail="site read failed"))
    source.observe_tick(healthy(clock))
    source.observe_tick(tick(clock, battery_ok=False, detail="bess read failed"))
    assert source.current().sha == good  # type: ignore[union-attr]
    status, reason, message = applied(source)
    assert (status, reason) == ("False", "HealthCheckFailed")
    assert "2 ticks with a battery or grid-meter read error" in message
    assert [q.sha for q in source.status().snapshot().quarantined] == [staged]


async def test_a_battery_that_does_not_follow_its_setpoint_fails_the_gate_at_once(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good, staged = await staged_after_good(upstream, make_source, clock)
    source.observe_tick(tick(clock, tracking_ok=False, detail="battery at 0 kW, setpoint 300"))
    assert source.current().sha == good  # type: ignore[union-attr]
    assert applied(source)[1] == "HealthCheckFailed"
    assert source.status().condition(C.HEALTHY).reason == "SetpointNotTracked"
    assert [q.sha for q in source.status().snapshot().quarantined] == [staged]


async def test_an_envelope_breach_fails_the_gate_at_once(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good, _staged = await staged_after_good(upstream, make_source, clock)
    source.observe_tick(tick(clock, envelope_ok=False, detail="setpoint beyond the limits"))
    assert source.current().sha == good  # type: ignore[union-attr]
    assert source.status().condition(C.HEALTHY).reason == "EnvelopeBreach"


async def test_tracking_is_not_judged_on_a_tick_the_battery_was_not_read(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    """With no fresh battery reading, tracking compares against an old one: a read error."""
    source, _good, staged = await staged_after_good(upstream, make_source, clock)
    source.observe_tick(tick(clock, battery_ok=False, tracking_ok=False, detail="bess timeout"))
    assert applied(source)[1] == "HealthGatePending"
    for _ in range(5):
        source.observe_tick(healthy(clock))
    assert source.status().snapshot().revisions.last_known_good == staged


async def test_the_site_files_gate_length_is_used_and_status_says_so(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    upstream.commit(gating(DEMO_TEXT, 2), "two ticks")
    source = make_source(health_gate_ticks=None)
    await source.sync_once()
    assert source.status().snapshot().health_gate_required == 2
    source.observe_tick(healthy(clock))
    message = applied(source)[2]
    assert "1/2 healthy ticks" in message
    assert "control.health_gate_ticks of the site file" in message
    source.observe_tick(healthy(clock))
    assert applied(source)[:2] == ("True", "Applied")


async def test_the_agent_flag_overrides_the_site_files_gate_length(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    upstream.commit(gating(DEMO_TEXT, 2), "two ticks")
    source = make_source(health_gate_ticks=4)
    await source.sync_once()
    assert source.status().snapshot().health_gate_required == 4
    for _ in range(3):
        source.observe_tick(healthy(clock))
    message = applied(source)[2]
    assert "3/4 healthy ticks" in message
    assert "--health-gate-ticks, overriding the site file's 2" in message
    source.observe_tick(healthy(clock))
    assert applied(source)[:2] == ("True", "Applied")
