"""`flux sim` refusing what a user mistypes: exit 2 and one line saying what to write,
before any simulator starts (real processes; the site's devices on free ports)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sites" / "demo.yaml"
HMCE = ROOT / "sites" / "hmce.yaml"
DEMO_PORTS = (15020, 15021, 15022, 15023)
FLUX = [sys.executable, "-m", "reconciler"]


def demo_on_free_ports(folder: Path, name: str = "demo.yaml") -> Path:
    """The demo site file with its devices on ports free a moment ago (never the fixed
    ones: a run that wrongly starts must not take them from a neighbour)."""
    text = DEMO.read_text(encoding="utf-8")
    for old in DEMO_PORTS:
        text = text.replace(f"port: {old}\n", f"port: {free_port()}\n")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def flux_sim(*args: str) -> tuple[int, str]:
    """Exit code and stderr of a `flux sim` that should stop at once; the timeout fails a
    run that starts serving instead."""
    done = subprocess.run([*FLUX, "sim", *args], capture_output=True, text=True, timeout=30)
    return done.returncode, done.stderr


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("speed", "message"),
    [
        ("inf", "'inf' is not a finite number"),
        ("nan", "'nan' is not a finite number"),
        ("1e308", "1e+308 is not in the range 0<x<=86400.0."),
        ("0", "0.0 is not in the range 0<x<=86400.0."),
    ],
)
def test_a_speed_that_is_not_a_sensible_number_is_refused(
    tmp_path: Path, speed: str, message: str
) -> None:
    rc, err = flux_sim(str(demo_on_free_ports(tmp_path)), "--speed", speed)
    assert (rc, last_line(err)) == (2, f"Error: Invalid value for '--speed': {message}")


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("2300-01-01T00:00", "'2300-01-01T00:00' is outside the years Flux works with (1970-2199)"),
        ("9999-12-31T23:59", "'9999-12-31T23:59' is outside the years Flux works with (1970-2199)"),
        ("tomorrow", "'tomorrow' is not an ISO 8601 time such as 2024-01-15T06:00"),
    ],
)
def test_a_start_outside_the_calendar_flux_knows_is_refused(
    tmp_path: Path, start: str, message: str
) -> None:
    rc, err = flux_sim(str(demo_on_free_ports(tmp_path)), "--speed", "60", "--start", start)
    assert (rc, last_line(err)) == (2, f"Error: Invalid value for --start: {message}")


@pytest.mark.parametrize("fault", ["bess:delay:-1", "bess:away:inf", "solar:away:1e300"])
def test_a_fault_time_that_is_negative_or_endless_is_refused(tmp_path: Path, fault: str) -> None:
    rc, err = flux_sim(str(demo_on_free_ports(tmp_path)), "--fault", fault)
    kind, arg = fault.split(":")[1:]
    assert (rc, last_line(err)) == (
        2,
        f"Error: Invalid value for --fault: {fault!r}: {kind} takes a number of seconds "
        f"from 0 to 31536000 (a year); got {arg!r}",
    )


def test_a_site_out_in_a_missing_folder_is_refused_before_the_simulators_start(
    tmp_path: Path,
) -> None:
    out = tmp_path / "nodir" / "x.yaml"
    rc, err = flux_sim(str(HMCE), "--ports", str(free_port()), "--site-out", str(out))
    assert (rc, last_line(err)) == (
        2,
        f"Error: Invalid value for --site-out: {out}: the folder {out.parent} does not exist; "
        "create it or choose another path",
    )
    assert "127.0.0.1" not in err  # nothing was served


def test_a_site_is_found_by_its_id_as_other_commands_find_it(tmp_path: Path) -> None:
    demo_on_free_ports(tmp_path)
    proc = subprocess.Popen(
        [*FLUX, "sim", "demo", "--sites-dir", str(tmp_path), "--status-every", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        while line and "soe" not in line:
            line = proc.stdout.readline()
        assert "soe" in line, "flux sim demo ended early"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_site_that_is_neither_a_file_nor_an_id_says_so(tmp_path: Path) -> None:
    rc, err = flux_sim("demo", "--sites-dir", str(tmp_path))
    assert (rc, last_line(err)) == (
        2,
        f"Error: no site 'demo': no file demo and no {tmp_path / 'demo.yaml'}; give the site "
        "file's path, or the folder of site files with --sites-dir",
    )
    rc, err = flux_sim(str(tmp_path / "nodir" / "x.yaml"))
    assert (rc, last_line(err)) == (2, f"Error: no site file {tmp_path}/nodir/x.yaml: no such file")
    rc, err = flux_sim(str(tmp_path))
    assert (rc, last_line(err)) == (2, f"Error: {tmp_path} is a folder, not a site file")
