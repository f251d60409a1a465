"""Poll the battery and three meters of sites/demo.yaml against the simulator.

Prints p50 and p99 of a full poll (battery + every meter, read concurrently as the agent
does) and the Modbus requests per poll, with read planning and with one register per
request (the baseline), and their ratio. The simulator runs as `flux sim` in its own
process on free loopback ports, so server work does not share this process's event loop.

    .venv/bin/python bench/poll.py [--polls 1000] [--site sites/demo.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simproc import SimDidNotStart, sim_process, site_with_free_ports

from reconciler.config.loader import load_site
from reconciler.devices.acuvim import AcuvimMeter
from reconciler.devices.factory import open_site_devices
from reconciler.devices.plan import plan_single
from reconciler.devices.powerpack import READ_REGISTERS, PowerPackBattery

ROOT = Path(__file__).resolve().parents[1]


async def poll_planned(battery: PowerPackBattery, meters: list[AcuvimMeter]) -> None:
    await asyncio.gather(battery.read(), *(m.read() for m in meters))


async def poll_single(battery: PowerPackBattery, meters: list[AcuvimMeter]) -> None:
    async def one(transport, names):  # type: ignore[no-untyped-def]
        await transport.read(names, blocks=plan_single(transport.profile, names))

    await asyncio.gather(
        one(battery.transport, READ_REGISTERS),
        *(one(m.transport, m._names) for m in meters),
    )


async def measure(name: str, poll, battery, meters, polls: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    transports = [battery.transport, *(m.transport for m in meters)]
    for _ in range(20):  # warm up: connections made, plans cached
        await poll(battery, meters)
    before = sum(t.requests for t in transports)
    times = []
    for _ in range(polls):
        t0 = time.perf_counter()
        await poll(battery, meters)
        times.append(time.perf_counter() - t0)
    requests = (sum(t.requests for t in transports) - before) / polls
    q = statistics.quantiles(times, n=100)
    return {
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "requests": requests,
        "total_s": sum(times),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--site", type=Path, default=ROOT / "sites" / "demo.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = site_with_free_ports(args.site, Path(tmp))
        site = load_site(path)
        try:
            async with sim_process(path):
                battery, meter_map = open_site_devices(site)
                meters = list(meter_map.values())
                results = {
                    "planned": await measure("planned", poll_planned, battery, meters, args.polls),
                    "one register per request": await measure(
                        "single", poll_single, battery, meters, args.polls
                    ),
                }
                await battery.close()
                for m in meters:
                    await m.close()
        except SimDidNotStart as exc:
            print("flux sim did not start:", exc)
            return 1
    print(
        f"{args.polls} polls of battery + {len(meters)} meters ({site.site.id}), "
        "concurrent per poll, simulator in its own process"
    )
    print(f"{'':26} {'p50 ms':>8} {'p99 ms':>8} {'requests/poll':>14}")
    for name, r in results.items():
        print(f"{name:26} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['requests']:14.1f}")
    p, s = results["planned"], results["one register per request"]
    print(
        f"ratio (one-per-request / planned): p50 {s['p50_ms'] / p['p50_ms']:.2f}x, "
        f"p99 {s['p99_ms'] / p['p99_ms']:.2f}x, requests {s['requests'] / p['requests']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
