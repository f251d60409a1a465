"""The systemd units say what the agent and the rollup service rely on."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.source.conftest import ROOT


def test_the_unit_runs_the_agent_with_a_watchdog_restart_and_its_own_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "flux-agent.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) >= 10
    assert service["Restart"] == "on-failure"
    assert service["User"] == "flux" and service["StateDirectory"] == "flux"
    exec_start = service["ExecStart"].split()
    assert exec_start[1:3] == ["agent", "run"]
    assert "--state-dir" in exec_start and "${STATE_DIRECTORY}" in exec_start
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_rollup_unit_keeps_the_rollups_current_as_their_owner() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "flux-rollups.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:5] == ["db", "refresh", "--every", "60"]
    assert service["EnvironmentFile"] == "/etc/flux/rollups.env"
    assert service["Restart"] == "on-failure"


@pytest.mark.parametrize("name", ["flux-agent.service", "flux-rollups.service"])
def test_the_unit_keeps_retrying_and_is_hardened(tmp_path: Path, name: str) -> None:
    text = (ROOT / "deploy" / name).read_text()
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    # systemd reads StartLimitIntervalSec only in [Unit]; in [Service] it is ignored
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert "StartLimitIntervalSec" not in unit["Service"]
    service = unit["Service"]
    for key in ("ProtectSystem", "NoNewPrivileges", "RestrictNamespaces", "SystemCallFilter"):
        assert key in service, key
    assert service["CapabilityBoundingSet"] == ""
    if name == "flux-agent.service":
        exec_start = service["ExecStart"].split()
        assert exec_start[exec_start.index("--lock-dir") + 1] == "${RUNTIME_DIRECTORY}"
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # the machine's own systemd scores the unit as written
        copy = tmp_path / name
        copy.write_text(text)
        out = subprocess.run(
            [analyze, "security", "--offline=yes", str(copy)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
        assert match is not None, out.stdout + out.stderr
        assert float(match.group(1)) <= 2.0, out.stdout
        verify = subprocess.run(
            [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
        )
        assert "Unknown key" not in verify.stderr, verify.stderr
