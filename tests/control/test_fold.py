"""The priority fold: table cases, then properties over random components."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.control.fold import fold
from reconciler.control.types import Component


def c(
    prio: int,
    target: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    name: str | None = None,
) -> Component:
    return Component(
        source=name or f"p{prio}",
        mode="test",
        priority=prio,
        target_kw=target,
        min_kw=lo,
        max_kw=hi,
    )


@pytest.mark.parametrize(
    ("components", "target", "effective"),
    [
        ([], 0.0, []),
        # a bare target holds: the lower one cannot move it (first target wins)
        ([c(9, 100), c(5, -50)], 100, ["p9"]),
        # "charge at least 100": a lower target that charges harder replaces it ...
        ([c(9, -100, hi=-100), c(5, -300)], -300, ["p5"]),
        # ... one that charges less or discharges cannot, and the bound is why
        ([c(9, -100, hi=-100), c(5, 50)], -100, ["p9"]),
        # "discharge at least 100": lower may discharge harder
        ([c(9, 100, lo=100), c(5, 250, lo=250)], 250, ["p5"]),
        # bound only: the lower target inside it is taken
        ([c(9, hi=150), c(5, 100)], 100, ["p5"]),
        # bound only: the lower target outside is refused; 0 clamped into [.., 150] is 0
        ([c(9, hi=150), c(5, 300)], 0, ["p9"]),
        # bound only that excludes 0: no target at all gives the nearest bound
        ([c(9, lo=40)], 40, ["p9"]),
        ([c(9, hi=-40)], -40, ["p9"]),
        # a lower bound that would exclude the current target is refused
        ([c(9, 100, lo=100), c(5, hi=50)], 100, ["p9"]),
        # a lower bound that tightens and keeps the target inside is taken
        ([c(9, -100, hi=-100), c(5, lo=-200), c(1, -400)], -100, ["p9", "p5"]),
        # idle at the top: nothing moves the battery
        ([c(100, 0, 0, 0), c(60, -300, hi=-300), c(30, 200, lo=200)], 0, ["p100"]),
        # order of the list does not matter, priority does
        ([c(5, -50), c(9, 100)], 100, ["p9"]),
        # an equal lower target keeps the higher driver
        ([c(9, 100, 100, 100), c(5, 100, lo=100)], 100, ["p9"]),
        # NaN targets are ignored
        ([c(9, math.nan), c(5, 20)], 20, ["p5"]),
    ],
)
def test_fold_table(components: list[Component], target: float, effective: list[str]) -> None:
    out = fold(components)
    assert out.target_kw == target
    assert [e.source for e in out.effective] == effective


def test_fold_reports_the_driver() -> None:
    out = fold([c(9, -100, hi=-100, name="niv"), c(5, -300, name="charge")])
    assert out.driver is not None and out.driver.source == "charge"
    # the lower bare target holds itself too
    assert (out.min_kw, out.max_kw) == (-300, -300)
    out = fold([c(9, -100, hi=-100, name="niv")])
    assert (out.min_kw, out.max_kw) == (-math.inf, -100)


# --------------------------------------------------------------------------- properties

power = st.floats(min_value=-1000, max_value=1000, allow_nan=False)
maybe = st.one_of(st.none(), power)


@st.composite
def component(draw: st.DrawFn, prio: int) -> Component:
    target = draw(maybe)
    lo, hi = draw(maybe), draw(maybe)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    if target is not None:  # modes always propose a target inside their own bounds
        if lo is not None:
            lo = min(lo, target)
        if hi is not None:
            hi = max(hi, target)
    return c(prio, target, lo, hi)


@st.composite
def components(draw: st.DrawFn) -> list[Component]:
    n = draw(st.integers(min_value=0, max_value=7))
    prios = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n, unique=True))
    return [draw(component(p)) for p in prios]


def _region(comp: Component) -> tuple[float, float]:
    """What a component allows lower priorities when its target is taken."""
    assert comp.target_kw is not None
    if comp.min_kw is None and comp.max_kw is None:
        return comp.target_kw, comp.target_kw
    return (
        -math.inf if comp.min_kw is None else comp.min_kw,
        math.inf if comp.max_kw is None else comp.max_kw,
    )


@given(components())
def test_result_is_inside_the_folded_bounds(comps: list[Component]) -> None:
    out = fold(comps)
    assert out.min_kw <= out.target_kw <= out.max_kw


@given(components())
def test_top_target_is_never_overridden(comps: list[Component]) -> None:
    """The highest-priority target is always taken, and the result stays in the room it
    leaves (exactly it, when it gives no bounds)."""
    ordered = sorted(comps, key=lambda x: -x.priority)
    if not ordered or ordered[0].target_kw is None:
        return
    lo, hi = _region(ordered[0])
    assert lo <= fold(comps).target_kw <= hi


@given(components(), components())
def test_lower_priorities_only_act_in_the_room_higher_ones_leave(
    high: list[Component], low: list[Component]
) -> None:
    """Adding lower-priority components never takes the result outside the bounds the
    higher ones folded to, and never moves a target they hold."""
    high = [c(x.priority + 1000, x.target_kw, x.min_kw, x.max_kw) for x in high]
    alone = fold(high)
    both = fold(high + low)
    assert alone.min_kw <= both.target_kw <= alone.max_kw
    if alone.driver is not None and alone.min_kw == alone.max_kw:
        assert both.target_kw == alone.target_kw


@given(components())
def test_idle_on_top_gives_zero(comps: list[Component]) -> None:
    assert fold([*comps, c(2000, 0.0, 0.0, 0.0)]).target_kw == 0.0


@given(components())
def test_result_is_a_proposed_target_or_clamped_zero(comps: list[Component]) -> None:
    out = fold(comps)
    targets = {x.target_kw for x in comps if x.target_kw is not None}
    assert out.target_kw in targets or out.target_kw == min(max(0.0, out.min_kw), out.max_kw)
