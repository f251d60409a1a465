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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.control.types import Component

INF = math.inf


@dataclass(frozen=True)
class Folded:
    """The outcome of the fold, kW (battery + discharge)."""

    target_kw: float
    min_kw: float
    max_kw: float
    driver: Component | None
    effective: tuple[Component, ...]


def fold(components: Sequence[Component]) -> Folded:
    """Fold ``components`` (any order; sorted by priority here, ties keep their order)."""
    ordered = sorted(components, key=lambda c: -c.priority)
    lo, hi = -INF, INF
    lo_src: Component | None = None
    hi_src: Component | None = None
    target: float | None = None
    driver: Component | None = None
    blockers: list[Component] = []

    for comp in ordered:
        t = comp.target_kw
        if t is not None and not math.isnan(t):
            if lo <= t <= hi:
                if t != target:  # an equal lower target changes nothing: keep the driver
                    target, driver = t, comp
                if comp.min_kw is None and comp.max_kw is None:
                    new_lo, new_hi = t, t
                else:
                    new_lo = -INF if comp.min_kw is None else min(comp.min_kw, t)
                    new_hi = INF if comp.max_kw is None else max(comp.max_kw, t)
                if new_lo > lo:
                    lo, lo_src = new_lo, comp
                if new_hi < hi:
                    hi, hi_src = new_hi, comp
                continue
            src = lo_src if t < lo else hi_src
            if src is not None:
                blockers.append(src)
        # bounds of a component whose target was not taken (or that gave none)
        keep_lo = target if target is not None else hi
        keep_hi = target if target is not None else lo
        # (a NaN bound fails every comparison, so it is never taken)
        if comp.min_kw is not None and lo < comp.min_kw <= keep_lo:
            lo, lo_src = comp.min_kw, comp
            keep_hi = target if target is not None else lo
        if comp.max_kw is not None and keep_hi <= comp.max_kw < hi:
            hi, hi_src = comp.max_kw, comp

    final = target if target is not None else min(max(0.0, lo), hi)
    shaping: list[Component] = []
    if driver is not None:
        shaping.append(driver)
    if final == lo and lo_src is not None:
        shaping.append(lo_src)
    if final == hi and hi_src is not None:
        shaping.append(hi_src)
    shaping.extend(blockers)
    effective: list[Component] = []
    for comp in ordered:
        if any(comp is s for s in shaping) and not any(comp is e for e in effective):
            effective.append(comp)
    return Folded(final, lo, hi, driver, tuple(effective))
