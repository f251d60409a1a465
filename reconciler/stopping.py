"""How every long-running command stops: SIGINT or SIGTERM sets a stop event that the
work watches, so it ends through its own cleanup (close devices, a last upload, a status
flush) instead of being cancelled mid-write."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_until_signalled(work: Callable[[asyncio.Event], Awaitable[T]]) -> T | None:
    """Run ``work(stop)`` until SIGINT or SIGTERM sets ``stop``; what it returned (None
    when a second Ctrl-C cut it short)."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await work(stop)

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main())
    return None


async def sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Wait ``seconds`` of real time, or less if ``stop`` is set; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
