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
    """For each band of the price now: periods, and the share followed by a spike."""
    n = len(price) - SPIKE_WITHIN
    later = np.array([price[t + 1 : t + 1 + SPIKE_WITHIN].max() for t in range(n)])
    now = price[:n]
    rows: list[dict[str, object]] = []
    for lo, hi in PRICE_BANDS:
        keep = np.ones(n, dtype=bool)
        if lo is not None:
            keep &= now >= lo
        if hi is not None:
            keep &= now < hi
        share = float(np.mean(later[keep] >= SPIKE_P_PER_KWH)) if keep.any() else None
        rows.append({"from": lo, "below": hi, "periods": int(keep.sum()), "share": share})
    overall = float(np.mean(later >= SPIKE_P_PER_KWH))
    rows.append({"from": None, "below": None, "periods": n, "share": overall})
    return rows


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
    print("by the price now (p/kWh):")
    for row in spike_rows:
        lo, hi, share = row["from"], row["below"], row["share"]
        band = _band(lo, hi)
        shown = f"{share:.1%}" if isinstance(share, float) else "-"
        print(f"  {band:<13} {row['periods']:>7,} periods  {shown:>6}")


if __name__ == "__main__":
    main()
