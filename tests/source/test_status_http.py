"""Status file, HTTP endpoint over real sockets, systemd notification, the file source."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import httpx
import pytest

from reconciler.agent.http import StatusServer
from reconciler.agent.systemd import LoopProgress, SystemdNotifier, sd_notify, watchdog_interval_s
from reconciler.atomic import write_atomic
from reconciler.clock import ManualClock
from reconciler.config.loader import SiteFileError
from reconciler.source.controller import FileSource
from reconciler.status.model import AgentStatus, ConditionType, MarketFeedStatus, read_status_file
from tests.source.conftest import (
    DEMO_TEXT,
    ROOT,
    SourceFactory,
    Upstream,
    healthy,
    promote,
    tick,
    unhealthy,
)


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return await client.get(path)


def metric_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


async def test_healthz_status_and_metrics_over_http(
    upstream: Upstream, make_source: SourceFactory, clock: ManualClock
) -> None:
    sha = upstream.commit(DEMO_TEXT, "good")
    source = make_source()
    server = StatusServer(lambda: source.status().snapshot(), "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port != 0
        down = await get(server.port, "/healthz")
        assert down.status_code == 503
        assert down.text.startswith("not ready: NoRevision")

        await source.sync_once()
        promote(source, clock)
        source.status().record_tick(
            at=clock.now(), decision_reason="niv_chase: charge", setpoint_kw=-120.5, outbox_size=7
        )
        source.status().record_tick(
            at=clock.now(),
            decision_reason="stale",
            safe=True,
            site_power_kw=231.5,
            limits_kw=(220.0, 475.0),
        )
        up = await get(server.port, "/healthz")
        assert up.status_code == 200 and up.text.startswith("ok: Running")

        st = await get(server.port, "/status")
        assert st.headers["content-type"] == "application/json"
        data = st.json()
        assert data["revisions"]["applied"] == sha
        conds = {c["type"]: c for c in data["conditions"]}
        assert set(conds) == {t.value for t in ConditionType}
        assert conds["Ready"]["status"] == "True" and conds["Applied"]["reason"] == "Applied"
        assert all("last_transition_time" in c for c in conds.values())
        assert data["loop"]["ticks_total"] == 2 and data["loop"]["outbox_size"] == 7

        m = await get(server.port, "/metrics")
        assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = metric_lines(m.text)
        assert 'flux_condition{site="demo",type="Ready",status="True"} 1' in lines
        assert 'flux_condition{site="demo",type="Ready",status="False"} 0' in lines
        assert 'flux_condition{site="demo",type="SourceReady",status="True"} 1' in lines
        assert f'flux_revision_info{{site="demo",role="applied",sha="{sha}"}} 1' in lines
        assert 'flux_ticks_total{site="demo"} 2' in lines
        assert 'flux_safe_ticks_total{site="demo"} 1' in lines
        assert 'flux_outbox_size{site="demo"} 7' in lines
        # What the alert rules compare (deploy/prometheus/flux-rules.yml).
        assert 'flux_safe_stop{site="demo"} 1' in lines
        assert 'flux_site_power_kw{site="demo"} 231.5' in lines
        assert 'flux_site_import_limit_kw{site="demo"} 220.0' in lines
        assert 'flux_site_export_limit_kw{site="demo"} 475.0' in lines
        assert 'flux_outbox_alert_rows{site="demo"} NaN' in lines
        fetched = source.status().snapshot().last_fetch_at
        assert fetched is not None
        assert (
            f'flux_last_fetch_timestamp_seconds{{site="demo"}} {fetched.timestamp():.3f}' in lines
        )
        assert "# TYPE flux_ticks_total counter" in m.text
        assert "flux_market_up" not in m.text  # no market APIs configured: no series

        source.status().set_markets(
            [
                MarketFeedStatus(source="modo", ok=True, last_success_at=clock.now()),
                MarketFeedStatus(source="axle", ok=False, consecutive_failures=3),
            ],
            [],
        )
        lines = metric_lines((await get(server.port, "/metrics")).text)
        assert 'flux_market_up{site="demo",source="modo"} 1' in lines
        assert 'flux_market_up{site="demo",source="axle"} 0' in lines
        assert 'flux_market_consecutive_failures{site="demo",source="axle"} 3' in lines
        assert (
            'flux_market_last_success_timestamp_seconds{site="demo",source="modo"} '
            f"{clock.now().timestamp():.3f}"
        ) in lines

        source.observe_tick(unhealthy(clock, "battery meter timed out"))
        sick = await get(server.port, "/healthz")
        assert sick.status_code == 503 and "battery meter timed out" in sick.text
        assert (await get(server.port, "/nowhere")).status_code == 404
        async with httpx.AsyncClient(timeout=10) as client:
            post = await client.post(f"http://127.0.0.1:{server.port}/status")
        assert post.status_code == 405
    finally:
        await server.close()


async def test_the_endpoint_survives_garbage(clock: ManualClock) -> None:
    status = AgentStatus(clock=clock, site="demo", source="git")
    server = StatusServer(status.snapshot, "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        reply = await reader.read()
        writer.close()
        assert reply.startswith(b"HTTP/1.1 400")
        assert (await get(server.port, "/healthz")).status_code == 503
    finally:
        await server.close()


def test_conditions_log_once_per_change_and_keep_ten_transitions(
    clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status = AgentStatus(clock=clock, site="demo", source="git", status_file=tmp_path / "s.json")
    caplog.set_level("INFO", logger="flux.status")
    for i in range(30):
        status.set_condition(ConditionType.HEALTHY, "True", "Healthy", f"tick {i}")
    assert len([r for r in caplog.records if r.getMessage() == "condition"]) == 1
    assert status.condition(ConditionType.HEALTHY).message == "tick 29"
    for i in range(12):
        clock.advance(1)
        status.set_condition(ConditionType.HEALTHY, "False", f"Reason{i}", "")
    snap = read_status_file(tmp_path / "s.json")
    assert len(snap.transitions) == 10
    assert snap.transitions[-1].reason == "Reason11"
    assert snap.condition(ConditionType.HEALTHY).last_transition_time == clock.now()


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    """A reader never sees a partial file while the writer rewrites it many times."""
    path = tmp_path / "status.json"
    write_atomic(path, json.dumps({"n": -1, "pad": "x" * 200_000}))
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                json.loads(path.read_text())
                reads += 1
            except ValueError as exc:
                bad.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(100):
            write_atomic(path, json.dumps({"n": n, "pad": "x" * (200_000 + n)}))
    finally:
        stop.set()
        thread.join()
    assert bad == [] and reads > 0
    assert json.loads(path.read_text())["n"] == 99
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_sd_notify_speaks_the_datagram_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        assert sd_notify("READY=1\nSTATUS=controlling")
        assert sock.recv(1024) == b"READY=1\nSTATUS=controlling"
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None


def test_file_source_validates_and_names_the_revision_by_content(
    tmp_path: Path, clock: ManualClock
) -> None:
    source = FileSource(ROOT / "sites" / "demo.yaml", clock=clock, status_file=tmp_path / "s.json")
    current = source.current()
    assert current.source == "file" and current.sha.startswith("file:")
    assert len(current.sha) == len("file:") + 12
    assert source.status().condition(ConditionType.READY).status == "Unknown"
    source.observe_tick(healthy(clock))
    assert source.status().ready
    source.observe_tick(tick(clock, detail="battery unreachable", battery_ok=False))
    assert source.status().condition(ConditionType.HEALTHY).reason == "DevicesUnresponsive"
    assert not source.status().ready

    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_TEXT.replace("  timezone: Europe/London\n", "  timezone: Mars/Base\n"))
    with pytest.raises(SiteFileError) as info:
        FileSource(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(SiteFileError, match="cannot read"):
        FileSource(tmp_path / "missing.yaml")


async def test_systemd_notifier_feeds_the_watchdog_while_ticks_end_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    """Fed while the loop's last iteration ended within its own interval plus grace: a
    28 s tick with beats every 15 s is alive at a 30.02 s gap (it was killed when the
    watchdog asked for a new tick at every beat); a loop silent past 38 s is hung."""
    address = str(tmp_path / "notify.sock")
    now = [1000.0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        status = AgentStatus(clock=clock, site="demo", source="git")
        progress = LoopProgress(monotonic=lambda: now[0])
        notifier = SystemdNotifier(status, progress)
        assert notifier.ready()
        assert sock.recv(1024).startswith(b"READY=1\nSTATUS=")
        # no revision yet: the loop idles a second at a time
        progress.mark(1.0)
        assert notifier.beat()
        assert sock.recv(1024).startswith(b"WATCHDOG=1")
        progress.mark(28.0)  # a tick ended; the next is due in 28 s
        for gap in (15.0, 30.02, 38.0):
            now[0] = 1000.0 + gap
            assert notifier.beat(), gap
            assert sock.recv(1024).startswith(b"WATCHDOG=1")
        now[0] = 1000.0 + 38.5  # 28 s + 10 s grace gone, no tick: hung
        assert not notifier.beat()
        progress.mark(28.0)
        assert notifier.beat()
        assert sock.recv(1024).startswith(b"WATCHDOG=1")

        monkeypatch.setenv("WATCHDOG_USEC", "100000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        stop = asyncio.Event()
        task = asyncio.create_task(SystemdNotifier(status, progress).run(stop))
        first = await asyncio.to_thread(sock.recv, 1024)
        assert first.startswith(b"READY=1")
        beat = await asyncio.to_thread(sock.recv, 1024)
        assert beat.startswith(b"WATCHDOG=1")
        stop.set()
        await asyncio.wait_for(task, 10)
