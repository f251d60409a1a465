"""Piecewise-linear curves of (x, y) points, as NIV chase and peak approach use them.

A curve is a sequence of points in rising x. The first and last x may be -inf / +inf: the
segment to an infinite end is flat at the finite point's y (so ``(-inf, 1280), (4, 1280)``
means "1,280 kWh at any price up to 4 p/kWh").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

Point = tuple[float, float]


def value_at(points: Sequence[Point], x: float) -> float | None:
    """The curve's y at ``x``, or None when ``x`` is outside the curve's span (or NaN)."""
    if math.isnan(x) or not points:
        return None
    if len(points) == 1:
        px, py = points[0]
        return py if x == px else None
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        if x1 <= x <= x2:
            if math.isinf(x1) and math.isinf(x2):
                return None  # a segment with no finite end has no defined height
            if math.isinf(x1):
                return y2
            if math.isinf(x2) or x2 == x1:
                return y1
            return y1 + (x - x1) * (y2 - y1) / (x2 - x1)
    return None


def vertical_distance(points: Sequence[Point], x: float, y: float) -> float | None:
    """Curve height at ``x`` minus ``y``: positive when (x, y) lies below the curve.

    None when ``x`` is outside the curve's span (the reference returns NaN there).
    """
    height = value_at(points, x)
    return None if height is None else height - y
