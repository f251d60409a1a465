"""How much of the imbalance price's future a history-only forecast can know.

The instrument behind the "where the rest of the gap is" section of docs/backtest.md: over
the shipped 2016-2019 prices (every settlement period, 980 days), the share of the
variance of the price's departure from its profile k periods ahead (R^2 of a least-squares
fit) that is explained by what is known now:

- ``departure``: the current period's departure (what the optimise entry's forecast fades);
- ``+ niv``: and the current NIV (MWh, + short) and its change since the last period;
- ``+ recent``: and the mean departures of the last 4 and last 8 periods;
- ``all``: all of these.

The profile is the mean price at the same half hour over the 14 days before (as the
forecast's own profile, without its weekday/weekend blend). Then, for the spikes: how
often a price of 30 p/kWh or more comes within the next 6 hours, by the price now.

    .venv/bin/python bench/price_predictability.py [--output json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from reconciler.backtest.prices import shipped_month, shipped_months  # noqa: E402

PROFILE_DAYS = 14
AHEAD = (1, 2, 4, 8, 16)
SPIKE_P_PER_KWH = 30.0
SPIKE_WITHIN = 12  # periods: 6 hours
PRICE_BANDS = ((None, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, None))

Array = NDArray[np.float64]


def shipped() -> tuple[Array, Array]:
    """Price (p/kWh) and NIV (MWh, 0 where unknown) of every shipped period, in order."""
    rows = [row for m in shipped_months() for row in shipped_month(m).rows()]
    price = np.array([p for _, p, _ in rows])
    niv = np.array([v if v is not None else 0.0 for _, _, v in rows])
    return price, niv


def departures(price: Array) -> Array:
    """Price minus the mean of the same half hour over the 14 days before (NaN before)."""
    out = np.full(len(price), np.nan)
    n = PROFILE_DAYS * 48
    for t in range(n, len(price)):
        out[t] = price[t] - price[t - n : t : 48].mean()
    return out


def r_squared(y: Array, columns: list[Array]) -> float:
    x = np.column_stack([np.ones(len(y)), *columns])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(1.0 - np.sum((y - x @ coef) ** 2) / np.sum((y - y.mean()) ** 2))


def explained(price: Array, niv: Array) -> dict[str, dict[int, float]]:
    d = departures(price)
    first = PROFILE_DAYS * 48 + 8
    out: dict[str, dict[int, float]] = {}
    for k in AHEAD:
        now = np.arange(first, len(price) - k)
        y = d[now + k]
        dep = [d[now]]
        nivs = [niv[now], niv[now] - niv[now - 1]]
        recent = [np.mean([d[now - j] for j in range(1, n + 1)], axis=0) for n in (4, 8)]
        for name, cols in (
            ("departure", dep),
            ("+ niv", dep + nivs),
            ("+ recent", dep + recent),
            ("all", dep + nivs + recent),
        ):
            out.setdefault(name, {})[k] = r_squared(y, cols)
    return out


def spikes(price: Array) -> list[dict[str, object]]:
    """For each band of the price now: periods, the share followed by a spike within
    SPIKE_WITHIN periods, the mean price now, and the mean of the best four prices of
    those periods (what a full battery, about four periods of discharge, could sell at
    with hindsight of the next hours)."""
    n = len(price) - SPIKE_WITHIN
    ahead = np.sort(np.lib.stride_tricks.sliding_window_view(price[1:], SPIKE_WITHIN)[:n], axis=1)
    later = ahead[:, -1]
    best4 = ahead[:, -4:].mean(axis=1)
    now = price[:n]
    rows: list[dict[str, object]] = []
    for lo, hi in PRICE_BANDS:
        keep = np.ones(n, dtype=bool)
        if lo is not None:
            keep &= now >= lo
        if hi is not None:
            keep &= now < hi
        rows.append(_band_row(lo, hi, keep, now, later, best4))
    rows.append(_band_row(None, None, np.ones(n, dtype=bool), now, later, best4))
    return rows


def _band_row(
    lo: float | None, hi: float | None, keep: NDArray[np.bool_], now: Array, later: Array,
    best4: Array,
) -> dict[str, object]:  # fmt: skip
    if not keep.any():
        return {"from": lo, "below": hi, "periods": 0, "share": None, "now": None, "best4": None}
    return {
        "from": lo,
        "below": hi,
        "periods": int(keep.sum()),
        "share": float(np.mean(later[keep] >= SPIKE_P_PER_KWH)),
        "now": float(now[keep].mean()),
        "best4": float(best4[keep].mean()),
    }


def _band(lo: object, hi: object) -> str:
    if lo is None:
        return "any" if hi is None else f"below {hi:g}"
    return f"{lo:g} and above" if hi is None else f"{lo:g}-{hi:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", choices=("table", "json"), default="table")
    args = parser.parse_args()
    price, niv = shipped()
    r2 = explained(price, niv)
    spike_rows = spikes(price)
    if args.output == "json":
        print(json.dumps({"periods": len(price), "r_squared": r2, "spikes": spike_rows}))
        return
    print(f"{len(price):,} settlement periods, 2016-07 to 2019-01")
    print("R^2 of the departure from the profile, by periods ahead:")
    print(f"  {'known now':<12}" + "".join(f"{k:>8}" for k in AHEAD))
    for name, by_k in r2.items():
        print(f"  {name:<12}" + "".join(f"{by_k[k]:>8.3f}" for k in AHEAD))
    print(f"A price of {SPIKE_P_PER_KWH:g} p/kWh or more within {SPIKE_WITHIN / 2:g} h,")
    print("by the price now (p/kWh), and the mean of the next 6 h's best four prices:")
    print(f"  {'price now':<13} {'periods':>7}  {'spike':>6}  {'mean now':>8}  {'best four':>9}")
    for row in spike_rows:
        band = _band(row["from"], row["below"])
        share, now, best4 = row["share"], row["now"], row["best4"]
        if not isinstance(share, float) or not isinstance(now, float):
            print(f"  {band:<13} {row['periods']:>7,}")
            continue
        print(f"  {band:<13} {row['periods']:>7,}  {share:>6.1%}  {now:>8.1f}  {best4:>9.1f}")


if __name__ == "__main__":
    main()
