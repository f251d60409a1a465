"""Who the fold names as shaping its result, read from the rooms it passed through."""

from __future__ import annotations

from reconciler.control.fold import fold
from tests.control.test_fold import c


def test_a_refused_target_names_the_bound_in_force_when_it_was_refused() -> None:
    # p7 tightens the cap to 50 and so refuses p5's 80; p3's 10 is then taken and holds.
    # p9's looser cap never mattered.
    out = fold([c(9, hi=100), c(7, hi=50), c(5, 80), c(3, 10)])
    assert out.target_kw == 10
    assert out.driver is not None and out.driver.source == "p3"
    assert [e.source for e in out.effective] == ["p7", "p3"]


def test_the_bounds_sources_are_the_last_to_tighten_them() -> None:
    # No target: 0 is clamped up to the floor p5 raised last; p9's floor was tightened away.
    out = fold([c(9, lo=10), c(5, lo=40), c(3, lo=20)])
    assert (out.target_kw, out.min_kw, out.driver) == (40, 40, None)
    assert [e.source for e in out.effective] == ["p5"]


def test_a_component_listed_twice_is_effective_once() -> None:
    hold = c(9, 100)
    out = fold([hold, hold])
    assert [e.source for e in out.effective] == ["p9"]
