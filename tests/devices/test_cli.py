"""`flux devices read` and `flux sim` as a user runs them (real processes, real TCP)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from reconciler.config.loader import load_site
from reconciler.config.model import Site
from reconciler.devices.factory import open_site_devices
from reconciler.sim.simulator import SiteSimulator
from tests.net import free_port

from .conftest import DEMO

FLUX = [sys.executable, "-c", "from reconciler.cli import main; main()"]
DEMO_PORTS = (15020, 15021, 15022, 15023)


def site_file(tmp_path: Path, ports: list[int]) -> Path:
    """The demo site file with its device ports replaced."""
    text = DEMO.read_text(encoding="utf-8")
    for old, new in zip(DEMO_PORTS, ports, strict=True):
        text = text.replace(f"port: {old}\n", f"port: {new}\n")
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def sim_ports(sim: SiteSimulator, site: Site) -> list[int]:
    return [sim.port_of(site.devices.battery.name)] + [sim.port_of(n) for n in site.devices.meters]


async def flux(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *FLUX, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_devices_read_json_reports_every_register(
    sim: SiteSimulator, demo_site: Site, tmp_path: Path
) -> None:
    path = site_file(tmp_path, sim_ports(sim, demo_site))
    rc, out, err = await flux("devices", "read", str(path), "--output", "json")
    assert rc == 0, err
    data = json.loads(out)
    devices = {d["device"]: d for d in data["devices"]}
    assert set(devices) == {"bess", "site", "battery_meter", "solar"}
    assert all(d["ok"] for d in devices.values())
    bess = {r["name"]: r for r in devices["bess"]["registers"]}
    assert bess["soe"]["value"] == pytest.approx(sim.plant.soe_kwh, abs=0.001)
    assert bess["soe"]["unit"] == "kWh" and bess["soe"]["address"] == 207
    assert len(devices["site"]["registers"]) == 23
    assert sim.writes() == []  # read-only


async def test_devices_read_table(sim: SiteSimulator, demo_site: Site, tmp_path: Path) -> None:
    path = site_file(tmp_path, sim_ports(sim, demo_site))
    rc, out, err = await flux("devices", "read", str(path), "--device", "solar")
    assert rc == 0, err
    assert "power_total" in out and "12322" in out and "kWh" in out
    assert "bess" not in out


async def test_devices_read_takes_a_site_id(
    sim: SiteSimulator, demo_site: Site, tmp_path: Path
) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    site_file(tmp_path, sim_ports(sim, demo_site)).rename(sites / "demo.yaml")
    rc, out, err = await flux(
        "devices", "read", "demo", "--sites-dir", str(sites), "--output", "json"
    )
    assert rc == 0, err
    assert {d["device"] for d in json.loads(out)["devices"]} == {
        "bess",
        "site",
        "battery_meter",
        "solar",
    }
    rc, _, err = await flux("devices", "read", "dmeo", "--sites-dir", str(sites))
    assert rc == 2 and "no site 'dmeo'" in err and "Traceback" not in err


async def test_devices_read_unreachable_device_exits_1(
    sim: SiteSimulator, demo_site: Site, tmp_path: Path
) -> None:
    ports = sim_ports(sim, demo_site)
    ports[3] = free_port()  # nothing listens for the solar meter
    path = site_file(tmp_path, ports)
    rc, out, err = await flux("devices", "read", str(path), "--output", "json")
    assert rc == 1
    devices = {d["device"]: d for d in json.loads(out)["devices"]}
    assert not devices["solar"]["ok"] and "cannot connect" in devices["solar"]["error"]
    assert devices["bess"]["ok"]
    assert f"solar at 127.0.0.1:{ports[3]}" in err
    assert "Traceback" not in err


async def test_devices_read_bad_site_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {id: x}\n", encoding="utf-8")
    rc, _, err = await flux("devices", "read", str(bad))
    assert rc == 2
    assert "bad.yaml" in err and "Traceback" not in err
    rc, _, err = await flux("devices", "read", str(tmp_path / "missing.yaml"))
    assert rc == 2 and "Traceback" not in err


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_flux_sim_serves_the_site_until_interrupted(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """Ctrl-C and systemd's SIGTERM stop it the same way: cleanly, exit 0."""
    ports = [free_port() for _ in range(4)]
    path = site_file(tmp_path, ports)
    proc = await asyncio.create_subprocess_exec(
        *FLUX,
        "sim",
        str(path),
        "--speed",
        "60",
        "--status-every",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines = []
        while not any("soe" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "flux sim ended early"
            lines.append(line)
        assert any(f"127.0.0.1:{ports[0]}" in line for line in lines)
        battery, meters = open_site_devices(load_site(path))
        await battery.start()
        await battery.command(50.0)
        assert (await battery.read()).soe_kwh == pytest.approx(768.0, abs=5)
        assert (await meters["site"].read()).frequency_hz == pytest.approx(50, abs=0.2)
        await battery.close()
        await meters["site"].close()
    finally:
        proc.send_signal(stop_signal)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert "stopped" in out.decode() and b"Traceback" not in err


async def test_flux_sim_port_in_use_is_a_clear_error(
    sim: SiteSimulator, demo_site: Site, tmp_path: Path
) -> None:
    path = site_file(tmp_path, sim_ports(sim, demo_site))
    rc, _, err = await flux("sim", str(path))
    assert rc == 1
    assert "cannot listen" in err and "Traceback" not in err


async def test_flux_sim_rejects_unknown_fault_device(tmp_path: Path) -> None:
    path = site_file(tmp_path, [free_port() for _ in range(4)])
    rc, _, err = await flux("sim", str(path), "--fault", "nope:away:5")
    assert rc == 2 and "no device 'nope'" in err


def _free_run(count: int) -> int:
    """A base port with ``count`` consecutive ports free a moment ago."""
    import socket

    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no run of free ports")


async def test_flux_sim_on_a_site_sharing_port_502_offers_ports_base(tmp_path: Path) -> None:
    hmce = Path(__file__).resolve().parents[2] / "sites" / "hmce.yaml"
    rc, _, err = await flux("sim", str(hmce))
    assert rc == 2, err
    assert "all use port 502 (on different hosts)" in err
    assert f"flux sim {hmce} --ports 15020 --site-out sim-site.yaml" in err
    assert "Traceback" not in err

    site = load_site(hmce)
    count = 1 + len(site.devices.meters)
    base = _free_run(count)
    out_file = tmp_path / "sim-site.yaml"
    proc = await asyncio.create_subprocess_exec(
        *FLUX,
        "sim",
        str(hmce),
        "--ports",
        str(base),
        "--site-out",
        str(out_file),
        "--status-every",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not any("soe" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "flux sim ended early"
            lines.append(line)
        assert any(f"127.0.0.1:{base + count - 1}" in line for line in lines)
        # The written site file is a valid site pointing at the simulator.
        rc, out, err = await flux("devices", "read", str(out_file), "--output", "json")
        assert rc == 0, err
        devices = {d["device"]: d for d in json.loads(out)["devices"]}
        assert set(devices) == {site.devices.battery.name, *site.devices.meters}
        assert all(d["ok"] for d in devices.values())
        copy = load_site(out_file)
        assert copy.schedule == site.schedule and copy.limits == site.limits
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
