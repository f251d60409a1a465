"""The priority fold: many components in, one battery target (kW) and its bounds out.

Rules (the reference controller's, written as target + bounds):

- Components are taken from the highest priority down.
- A target is taken only if it lies inside the bounds so far. A component that gives a
  target and no bound holds it: nothing lower may move it (first target wins). One that
  gives a bound on one side (e.g. ``max = target`` for "charge at least this hard")
  leaves the other side open, so a lower target further that way replaces it.
- A bound is taken only if it tightens the bounds and keeps the current target (or, with
  no target yet, the other bound) inside.
- No target at all means 0 kW, clamped into the bounds.

The fold itself is arithmetic on a :data:`Room`: for each component its target, then its
min, then its max, each a small step of its own. Who shaped the result (the driver, the
bounds' sources, the bounds that refused a target) is read afterwards from the rooms the
fold passed through.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.control.types import Component

INF = math.inf

Room = tuple[float | None, float, float]
"""Where the battery target may still go, kW: (target so far or None, min, max)."""

OPEN: Room = (None, -INF, INF)


@dataclass(frozen=True)
class Folded:
    """The outcome of the fold, kW (battery + discharge)."""

    target_kw: float
    min_kw: float
    max_kw: float
    driver: Component | None
    effective: tuple[Component, ...]


# --------------------------------------------------------------------------- the fold


def _admitted(target: float | None, lo: float, hi: float) -> float | None:
    """``target`` if it is a number within [lo, hi] (a NaN never is), else None."""
    if target is not None and lo <= target <= hi:
        return target
    return None


def _held(comp: Component, target: float) -> tuple[float | None, float | None]:
    """The bounds a taken target leaves: itself on both sides when the component gives no
    bound (it holds), else the component's bounds widened to include it."""
    if comp.min_kw is None and comp.max_kw is None:
        return target, target
    lo = None if comp.min_kw is None else min(comp.min_kw, target)
    hi = None if comp.max_kw is None else max(comp.max_kw, target)
    return lo, hi


def _raised(lo: float, kw: float | None, keep: float) -> float:
    """The lower bound after a component's min ``kw``: raised to it if that tightens it and
    keeps ``keep`` (the target, or with no target the upper bound) inside. A NaN fails
    every comparison, so it is never taken."""
    return kw if kw is not None and lo < kw <= keep else lo


def _lowered(hi: float, kw: float | None, keep: float) -> float:
    """The upper bound after a component's max ``kw``, on the same terms as :func:`_raised`."""
    return kw if kw is not None and keep <= kw < hi else hi


def _step(room: Room, comp: Component) -> Room:
    """One component: its target if the room admits it, then its min, then its max."""
    target, lo, hi = room
    taken = _admitted(comp.target_kw, lo, hi)
    if taken is None:
        lo_kw, hi_kw = comp.min_kw, comp.max_kw
    else:
        if taken != target:  # an equal lower target changes nothing (nor the driver)
            target = taken
        lo_kw, hi_kw = _held(comp, taken)
    lo = _raised(lo, lo_kw, hi if target is None else target)
    hi = _lowered(hi, hi_kw, lo if target is None else target)
    return target, lo, hi


# --------------------------------------------------------------------------- who shaped it


class Shapers(NamedTuple):
    """Who set the final target and each bound (None: nobody), and for each refused
    target, who had set the bound that refused it."""

    driver: Component | None
    lo_source: Component | None
    hi_source: Component | None
    blockers: tuple[Component, ...]


def _refuser(
    target: float | None,
    lo: float,
    hi: float,
    lo_source: Component | None,
    hi_source: Component | None,
) -> Component | None:
    """Who set the bound of [lo, hi] that refuses ``target`` (None when it is taken, is
    not a number, or the bound was never set)."""
    if target is None or math.isnan(target) or lo <= target <= hi:
        return None
    return lo_source if target < lo else hi_source


def _replay(ordered: Sequence[Component], rooms: Sequence[Room]) -> Shapers:
    """Walk the rooms the fold passed through (``rooms[k]`` is the room before
    ``ordered[k]``). A target or bound changes only when a step takes a different value,
    so the last component to change one is who set the value in force."""
    driver: Component | None = None
    lo_source: Component | None = None
    hi_source: Component | None = None
    blockers: list[Component] = []
    steps = zip(ordered, rooms, rooms[1:], strict=False)
    for comp, (target, lo, hi), (new_target, new_lo, new_hi) in steps:
        blocker = _refuser(comp.target_kw, lo, hi, lo_source, hi_source)
        if blocker is not None:
            blockers.append(blocker)
        if new_target != target:
            driver = comp
        if new_lo != lo:
            lo_source = comp
        if new_hi != hi:
            hi_source = comp
    return Shapers(driver, lo_source, hi_source, tuple(blockers))


def _effective(
    ordered: Sequence[Component], final: Room, target: float, shapers: Shapers
) -> tuple[Component, ...]:
    """The components whose target or bound shaped ``target``, highest priority first:
    the driver, the source of a bound the target sits on, and the refusing bounds."""
    driver, lo_source, hi_source, blockers = shapers
    shaping = [driver, *blockers]
    _, lo, hi = final
    if target == lo:
        shaping.append(lo_source)
    if target == hi:
        shaping.append(hi_source)
    shaped = {id(s) for s in shaping if s is not None}
    # by identity, once each (a dict keeps the first position of each key)
    effective = {id(c): c for c in ordered if id(c) in shaped}
    return tuple(effective.values())


def fold(components: Sequence[Component]) -> Folded:
    """Fold ``components`` (any order; sorted by priority here, ties keep their order)."""
    ordered = sorted(components, key=lambda c: -c.priority)
    rooms = list(itertools.accumulate(ordered, _step, initial=OPEN))
    final = rooms[-1]
    picked, lo, hi = final
    target = picked if picked is not None else min(max(0.0, lo), hi)
    shapers = _replay(ordered, rooms)
    effective = _effective(ordered, final, target, shapers)
    return Folded(target, lo, hi, shapers.driver, effective)
