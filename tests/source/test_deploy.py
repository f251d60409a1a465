"""The systemd unit says what the agent relies on."""

from __future__ import annotations

import configparser

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
