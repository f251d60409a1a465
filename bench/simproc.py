"""`flux sim` in its own process for the benchmarks, on free loopback ports, so the
simulator's work does not share the measured event loop."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_with_free_ports(
    site_path: Path, folder: Path, *, poll_interval_s: float | None = None
) -> Path:
    """A copy of the site file with every device on a free port (and, if given, every
    device polled at ``poll_interval_s``)."""
    text = site_path.read_text(encoding="utf-8")
    text = re.sub(r"(\n\s+port:) \d+", lambda m: f"{m.group(1)} {free_port()}", text)
    if poll_interval_s is not None:
        text = re.sub(r"(\n\s+poll_interval_s:) [\d.]+", rf"\g<1> {poll_interval_s}", text)
    path = folder / f"bench-{site_path.stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class SimDidNotStart(RuntimeError):
    pass


@asynccontextmanager
async def sim_process(site_file: Path, *extra: str) -> AsyncIterator[None]:
    """Run `flux sim SITE_FILE [EXTRA...]` until the block ends; raises SimDidNotStart
    with its stderr if it never reports the battery."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        "sim",
        str(site_file),
        "--status-every",
        "3600",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while b"soe" not in (line := await asyncio.wait_for(proc.stdout.readline(), 30)):
            if not line:
                raise SimDidNotStart((await proc.stderr.read()).decode())
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await proc.communicate()
