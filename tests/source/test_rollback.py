"""The followed branch moving backwards: a force-push to an older commit, or a rewritten
history, is refused unless rollbacks are allowed (site file or agent flag)."""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.clock import ManualClock
from reconciler.source.controller import GitSource
from reconciler.status.model import ConditionType as C
from tests.source.conftest import (
    DEMO_TEXT,
    SourceFactory,
    Upstream,
    demo_variant,
    git,
    make_settings,
    promote,
    running_on,
)

ALLOW = "allow with control.allow_rollback or --allow-rollback"


def allowing(text: str) -> str:
    """The site file with ``control.allow_rollback: true``."""
    assert "control:\n  tick_s: 4\n" in text
    return text.replace(
        "control:\n  tick_s: 4\n", "control:\n  tick_s: 4\n  allow_rollback: true\n"
    )


def applied(source: GitSource) -> tuple[str, str, str]:
    c = source.status().condition(C.APPLIED)
    return c.status, c.reason, c.message


async def test_a_force_push_back_to_an_older_commit_is_refused(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, first = await running_on(upstream, make_source, clock, "first")
    second = upstream.commit(demo_variant(90), "second")
    await source.sync_once()
    promote(source, clock)

    upstream.force_reset(first)
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == second
    status, reason, message = applied(source)
    assert (status, reason) == ("False", "RollbackRefused")
    assert message.startswith(
        f"refused rollback from {second[:12]} to {first[:12]}: not a fast-forward; {ALLOW}"
    )
    assert source.status().snapshot().revisions.observed == first
    # asked again, the same answer, and control never moved
    await source.sync_once()
    assert applied(source)[1] == "RollbackRefused"
    assert source.current().sha == second  # type: ignore[union-attr]

    # a normal fast-forward from there is unaffected
    upstream.force_reset(second)
    third = upstream.commit(demo_variant(92), "third")
    await source.sync_once()
    assert source.current().sha == third  # type: ignore[union-attr]
    assert applied(source)[1] == "HealthGatePending"


async def test_a_rewritten_history_is_refused_like_a_rollback(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, first = await running_on(upstream, make_source, clock, "first")
    second = upstream.commit(demo_variant(90), "second")
    await source.sync_once()
    promote(source, clock)

    upstream.force_reset(first)
    rewritten = upstream.commit(demo_variant(91), "rewritten history")
    await source.sync_once()
    assert source.current().sha == second  # type: ignore[union-attr]
    status, reason, message = applied(source)
    assert (status, reason) == ("False", "RollbackRefused")
    assert message.startswith(
        f"refused move from {second[:12]} to {rewritten[:12]}: not a fast-forward "
        f"({rewritten[:12]} does not descend from {second[:12]}: a rewritten history); {ALLOW}"
    )


async def test_the_agent_flag_allows_a_rollback_and_says_so(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    source, first = await running_on(upstream, make_source, clock, "first")
    second = upstream.commit(demo_variant(90), "second")
    await source.sync_once()
    promote(source, clock)
    upstream.force_reset(first)
    await source.sync_once()
    assert applied(source)[1] == "RollbackRefused"

    # the operator restarts the agent with --allow-rollback
    allowed = GitSource(make_settings(upstream, state_dir, allow_rollback=True), clock=clock)
    await allowed.sync_once()
    current = allowed.current()
    assert current is not None and current.sha == first
    status, reason, message = applied(allowed)
    assert (status, reason) == ("Unknown", "HealthGatePending")
    assert f"rollback from {second[:12]} to {first[:12]} allowed by --allow-rollback" in message
    promote(allowed, clock)
    assert allowed.status().snapshot().revisions.last_known_good == first


async def test_the_site_file_in_control_allows_a_rollback(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    source, zero = await running_on(upstream, make_source, clock, "zero")
    first = upstream.commit(demo_variant(89), "first")
    await source.sync_once()
    promote(source, clock)
    second = upstream.commit(allowing(demo_variant(90)), "allow rollbacks")
    await source.sync_once()
    promote(source, clock)

    upstream.force_reset(first)  # first's own file does not allow it: second's does
    await source.sync_once()
    assert source.current().sha == first  # type: ignore[union-attr]
    message = applied(source)[2]
    assert (
        f"rollback from {second[:12]} to {first[:12]} allowed by control.allow_rollback "
        f"in the site file of {second[:12]}"
    ) in message
    promote(source, clock)

    # first does not allow rollbacks: going further back is refused
    upstream.force_reset(zero)
    await source.sync_once()
    assert applied(source)[1] == "RollbackRefused"
    assert source.current().sha == first  # type: ignore[union-attr]


async def test_a_fast_forward_is_recognised_in_a_new_mirror(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    """The mirror starts shallow (one commit); a lost mirror with the last-known-good on
    disk must not make the next ordinary commit look like a rewritten history."""
    source, _first = await running_on(upstream, make_source, clock, "first")
    second = upstream.commit(demo_variant(94), "second")
    await source.sync_once()
    promote(source, clock)
    shutil.rmtree(state_dir / "repo.git")
    upstream.commit(demo_variant(95), "third")
    fourth = upstream.commit(demo_variant(96), "fourth")

    booted = make_source()
    assert booted.current().sha == second  # type: ignore[union-attr]
    await booted.sync_once()
    assert booted.current().sha == fourth  # type: ignore[union-attr]
    assert applied(booted)[1] == "HealthGatePending"


async def test_a_rollback_past_the_shallow_start_of_the_mirror_is_refused(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock, state_dir: Path
) -> None:
    first = upstream.commit(DEMO_TEXT, "first")
    second = upstream.commit(demo_variant(97), "second")
    source = make_source()  # its first fetch is shallow: it has never seen `first`
    await source.sync_once()
    promote(source, clock)
    assert git(state_dir / "repo.git", "rev-list", "--count", "refs/remotes/origin/main") == "1"

    upstream.force_reset(first)
    await source.sync_once()
    assert source.current().sha == second  # type: ignore[union-attr]
    status, reason, message = applied(source)
    assert (status, reason) == ("False", "RollbackRefused")
    assert message.startswith(f"refused rollback from {second[:12]} to {first[:12]}: not a fast")
