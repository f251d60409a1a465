"""GitSource against real repositories: apply, refuse, gate, revert, quarantine, restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.source.controller import GitSource
from reconciler.source.validate import flux_validate
from reconciler.status.model import ConditionType as C
from tests.source.conftest import (
    DEMO_TEXT,
    SITE_PATH,
    SourceFactory,
    Upstream,
    demo_variant,
    git,
    healthy,
    make_settings,
    promote,
    running_on,
    tick,
    unhealthy,
)


def cond(source: GitSource, kind: C) -> tuple[str, str, str]:
    c = source.status().condition(kind)
    return c.status, c.reason, c.message


def expected_problems(text: str) -> str:
    """What `flux validate` says about this text at sites/demo.yaml (computed, not copied)."""
    with tempfile.TemporaryDirectory() as tmp:
        real = Path(tmp) / SITE_PATH
        real.parent.mkdir(parents=True)
        real.write_text(text, encoding="utf-8")
        _site, problems = flux_validate(real)
    errors = [p for p in problems if p.severity == "error"]
    assert errors, "the test's invalid text must be invalid"
    return "\n".join(str(p).replace(str(real), SITE_PATH) for p in errors)


async def test_good_commit_is_staged_then_last_known_good(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    sha = upstream.commit(DEMO_TEXT, "first")
    source = make_source()
    assert source.current() is None
    assert cond(source, C.READY)[:2] == ("False", "NoRevision")

    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == sha and current.source == "git"
    assert current.site.site.id == "demo"
    assert cond(source, C.SOURCE_READY)[:2] == ("True", "Fetched")
    assert cond(source, C.VERIFIED)[:2] == ("True", "NotRequired")
    assert cond(source, C.VALIDATED)[:2] == ("True", "Valid")
    assert cond(source, C.APPLIED)[:2] == ("Unknown", "HealthGatePending")
    assert not (state_dir / "last-known-good.json").exists()

    source.observe_tick(healthy(clock))
    source.observe_tick(healthy(clock))
    assert cond(source, C.APPLIED)[1] == "HealthGatePending"
    assert "2/3 healthy ticks" in cond(source, C.APPLIED)[2]
    assert source.status().snapshot().revisions.staged == sha
    source.observe_tick(healthy(clock))
    assert cond(source, C.APPLIED)[:2] == ("True", "Applied")
    assert cond(source, C.READY)[:2] == ("True", "Running")
    snap = source.status().snapshot()
    assert snap.revisions.last_known_good == sha and snap.revisions.staged is None
    assert snap.revisions.applied == sha and snap.revisions.observed == sha

    stored = json.loads((state_dir / "last-known-good.json").read_text())
    assert stored["sha"] == sha
    assert stored["site_yaml"] == DEMO_TEXT
    assert stored["site_path"] == SITE_PATH
    assert set(stored["resolved"]["profiles"]) == {"tesla-powerpack", "acuvim-ii"}
    assert stored["resolved"]["site"]["site"]["homes"] == 54


async def test_the_mirror_is_shallow_for_a_local_path(
    upstream: Upstream, make_source: SourceFactory, state_dir: Path
) -> None:
    upstream.commit(DEMO_TEXT, "one")
    upstream.commit(demo_variant(55), "two")
    source = make_source()
    await source.sync_once()
    mirror = state_dir / "repo.git"
    assert (mirror / "shallow").exists()
    assert git(mirror, "rev-list", "--count", "refs/remotes/origin/main") == "1"
    # later fetches bring just the new commits, linked to what the mirror has (so a
    # fast-forward is seen as one), without fetching the history before the first fetch
    upstream.commit(demo_variant(56), "three")
    upstream.commit(demo_variant(57), "four")
    await source.sync_once()
    assert (mirror / "shallow").exists()
    assert git(mirror, "rev-list", "--count", "refs/remotes/origin/main") == "3"


async def test_invalid_commit_is_refused_with_the_validators_message(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")

    bad_text = DEMO_TEXT.replace("    port: 15020\n", "    port: 99999\n")
    bad = upstream.commit(bad_text, "bad port")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == good
    status, reason, message = cond(source, C.VALIDATED)
    assert (status, reason) == ("False", "Invalid")
    assert message == expected_problems(bad_text)
    assert message.startswith(f"{SITE_PATH}:")
    applied = cond(source, C.APPLIED)
    assert applied[:2] == ("False", "ValidationFailed")
    assert f"control continues on {good[:12]}" in applied[2]
    snap = source.status().snapshot()
    assert snap.revisions.attempted == bad and snap.revisions.applied == good
    # control is still fine: Ready stays True, and says the newest commit is not applied
    source.observe_tick(healthy(clock))
    ready = cond(source, C.READY)
    assert ready[0] == "True" and "ValidationFailed" in ready[2]


async def test_a_commit_that_deletes_the_site_file_is_refused(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")
    upstream.commit(None, "remove the site")
    await source.sync_once()
    assert cond(source, C.VALIDATED)[:2] == ("False", "SiteFileMissing")
    assert SITE_PATH in cond(source, C.VALIDATED)[2]
    current = source.current()
    assert current is not None and current.sha == good


async def test_a_file_for_another_site_is_refused(
    upstream: Upstream, make_source: SourceFactory
) -> None:
    upstream.commit(DEMO_TEXT.replace("  id: demo\n", "  id: other\n"), "wrong id")
    source = make_source()
    await source.sync_once()
    assert source.current() is None
    assert cond(source, C.VALIDATED)[:2] == ("False", "SiteIdMismatch")


async def test_failing_health_gate_reverts_and_quarantines_until_a_newer_commit(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")

    bad = upstream.commit(demo_variant(60), "looks fine, runs badly")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == bad
    source.observe_tick(healthy(clock))
    source.observe_tick(unhealthy(clock, "battery at 0 kW, setpoint 300 kW"))

    current = source.current()
    assert current is not None and current.sha == good
    status, reason, message = cond(source, C.APPLIED)
    assert (status, reason) == ("False", "HealthCheckFailed")
    assert "battery at 0 kW, setpoint 300 kW" in message and "quarantined" in message
    assert cond(source, C.HEALTHY)[:2] == ("False", "SetpointNotTracked")
    snap = source.status().snapshot()
    assert [q.sha for q in snap.quarantined] == [bad]
    assert snap.revisions.last_known_good == good and snap.revisions.staged is None

    # the same head again: not retried
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == good
    assert cond(source, C.APPLIED)[:2] == ("False", "Quarantined")

    # and not after a restart either: the quarantine is on disk
    again = GitSource(make_settings(upstream, state_dir), clock=clock)
    await again.sync_once()
    current = again.current()
    assert current is not None and current.sha == good
    assert cond(again, C.APPLIED)[:2] == ("False", "Quarantined")

    # a newer commit is tried
    newer = upstream.commit(demo_variant(61), "fixed")
    await again.sync_once()
    current = again.current()
    assert current is not None and current.sha == newer
    promote(again, clock)
    assert cond(again, C.APPLIED)[:2] == ("True", "Applied")


async def test_without_a_last_known_good_a_failing_revision_stays_in_control(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    only = upstream.commit(DEMO_TEXT, "first ever")
    source = make_source()
    await source.sync_once()
    source.observe_tick(unhealthy(clock, "battery at 0 kW, setpoint 300 kW"))
    current = source.current()
    assert current is not None and current.sha == only
    assert cond(source, C.APPLIED)[:2] == ("Unknown", "HealthGateFailing")
    assert source.status().snapshot().quarantined == []
    promote(source, clock)
    assert cond(source, C.APPLIED)[:2] == ("True", "Applied")


async def test_a_newer_commit_preempts_a_staged_one(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, _ = await running_on(upstream, make_source, clock, "good")
    staged = upstream.commit(demo_variant(70), "b")
    await source.sync_once()
    source.observe_tick(healthy(clock))
    source.observe_tick(healthy(clock))
    newer = upstream.commit(demo_variant(71), "c")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == newer
    snap = source.status().snapshot()
    assert snap.revisions.staged == newer and snap.health_gate_passed == 0
    assert staged not in [q.sha for q in snap.quarantined]
    source.observe_tick(healthy(clock))
    assert cond(source, C.APPLIED)[1] == "HealthGatePending"
    source.observe_tick(healthy(clock))
    source.observe_tick(healthy(clock))
    assert source.status().snapshot().revisions.last_known_good == newer


async def test_ticks_of_another_revision_do_not_count_for_the_staged_one(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")
    upstream.commit(demo_variant(80), "b")
    await source.sync_once()
    for _ in range(5):
        source.observe_tick(healthy(clock, sha=good))
    source.observe_tick(
        tick(clock, good, "old tick", battery_ok=False, tracking_ok=False, envelope_ok=False)
    )
    snap = source.status().snapshot()
    assert snap.revisions.staged is not None and snap.health_gate_passed == 0
    assert snap.quarantined == []


async def test_unreachable_remote_keeps_control_and_says_why(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, tmp_path: Path
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")
    upstream.path.rename(tmp_path / "moved-away")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == good
    status, reason, message = cond(source, C.SOURCE_READY)
    assert (status, reason) == ("False", "RemoteUnreachable")
    assert str(upstream.path) in message and f"control continues on {good[:12]}" in message
    source.observe_tick(healthy(clock))
    assert cond(source, C.READY)[0] == "True"
    snap = source.status().snapshot()
    assert snap.fetch_failures_total == 1 and snap.last_successful_fetch_at is not None


async def test_restart_with_no_network_runs_the_persisted_last_known_good(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    source, good = await running_on(upstream, make_source, clock, "good")
    shutil.rmtree(upstream.path)

    booted = GitSource(make_settings(upstream, state_dir), clock=clock)
    current = booted.current()
    assert current is not None
    assert (current.sha, current.source) == (good, "lkg")
    assert current.site.devices.battery.port == 15020
    # the NIV curves' infinities survive the JSON round trip
    assert current.site == source.current().site  # type: ignore[union-attr]
    assert cond(booted, C.APPLIED)[:2] == ("True", "LastKnownGood")
    await booted.sync_once()
    assert cond(booted, C.SOURCE_READY)[:2] == ("False", "RemoteUnreachable")
    booted.observe_tick(healthy(clock))
    assert cond(booted, C.READY)[0] == "True"


async def test_a_force_pushed_branch_is_followed_when_rollbacks_are_allowed(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    """Without --allow-rollback a rewritten history is refused: see test_rollback.py."""
    source, first = await running_on(upstream, make_source, clock, "first", allow_rollback=True)
    second = upstream.commit(demo_variant(90), "second")
    await source.sync_once()
    promote(source, clock)

    upstream.force_reset(first)
    rewritten = upstream.commit(demo_variant(91), "rewritten history")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == rewritten
    assert current.site.site.homes == 91
    # the branch going back to the last-known-good's own commit drops what was staged
    upstream.force_reset(second)
    await source.sync_once()
    snap = source.status().snapshot()
    assert snap.revisions.observed == second and snap.revisions.staged is None
    assert cond(source, C.APPLIED)[:2] == ("True", "Applied")
    current = source.current()
    assert current is not None and current.sha == second


async def test_following_a_tag(upstream: Upstream, make_source: SourceFactory) -> None:
    tagged = upstream.commit(DEMO_TEXT, "release")
    git(upstream.path, "tag", "v1")
    upstream.commit(demo_variant(99), "work in progress")
    source = make_source(tag="v1")
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == tagged


async def test_a_missing_branch_is_reported(upstream: Upstream, make_source: SourceFactory) -> None:
    upstream.commit(DEMO_TEXT, "x")
    source = make_source(branch="production")
    await source.sync_once()
    assert cond(source, C.SOURCE_READY)[:2] == ("False", "RefNotFound")
    assert "branch production" in cond(source, C.SOURCE_READY)[2]


async def test_a_hanging_remote_is_cut_off_and_reported(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _source, good = await running_on(upstream, make_source, clock, "good")
    # an SSH remote whose "ssh" never answers: the fetch must be killed, not wait forever
    monkeypatch.setenv("GIT_SSH_COMMAND", "sh -c 'sleep 20'")
    hanging = make_source(repo="ssh://git@example.invalid/sites.git", fetch_timeout_s=1)
    await hanging.sync_once()
    status, reason, message = cond(hanging, C.SOURCE_READY)
    assert (status, reason) == ("False", "RemoteUnreachable")
    assert "did not finish within 1 s" in message
    current = hanging.current()
    assert current is not None and current.sha == good


async def test_a_revision_the_agent_keeps_dying_in_is_quarantined(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    """The agent is killed while B is in its health gate, twice (each start stages it
    again: one death may be a power cut). At the third start B is quarantined and control
    stays on A; a clean stop in between would not have counted."""
    _source, good = await running_on(upstream, make_source, clock, "good")
    bad = upstream.commit(demo_variant(60), "B")
    for start in (1, 2):
        restarted = make_source()  # the previous process died: nothing was cleaned up
        assert restarted.current().sha == good  # type: ignore[union-attr]
        await restarted.sync_once()
        assert restarted.current().sha == bad, start  # type: ignore[union-attr]
        restarted.observe_tick(healthy(clock))  # part way through the gate
    third = make_source()
    await third.sync_once()
    assert third.current().sha == good  # type: ignore[union-attr]
    status, reason, message = cond(third, C.APPLIED)
    assert (status, reason) == ("False", "DiedInHealthGate"), message
    assert "stopped 2 times" in message
    assert [q.sha for q in third.status().snapshot().quarantined] == [bad]
    # a newer commit is tried afresh
    newer = upstream.commit(demo_variant(61), "C")
    await third.sync_once()
    assert third.current().sha == newer  # type: ignore[union-attr]


async def test_a_clean_stop_during_the_gate_does_not_count_against_the_revision(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    _source, good = await running_on(upstream, make_source, clock, "good")
    staged = upstream.commit(demo_variant(60), "B")
    for _ in range(3):
        source = make_source()
        stop = asyncio.Event()
        stop.set()  # run() returns at once: a SIGTERM before the next fetch
        await source.sync_once()
        assert source.current().sha == staged  # type: ignore[union-attr]
        await source.run(stop)
    again = make_source()
    assert again.current().sha == good  # type: ignore[union-attr]
    await again.sync_once()
    assert again.current().sha == staged  # type: ignore[union-attr]
    assert again.status().snapshot().quarantined == []
