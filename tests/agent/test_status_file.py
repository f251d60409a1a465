"""`flux agent status` on a status file it cannot use: exit 2 and one line that names the
file, the option it came from and the first thing wrong with it."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.agent.lock import BatteryLock
from reconciler.agent.operator import status
from reconciler.clock import ManualClock
from reconciler.source.paths import StatePaths
from reconciler.status.model import AgentStatus, read_status_file


def agent_status(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(status, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "the file holds a list, not a JSON object"),
        ("not json", "not JSON (expected ident at line 1 column 2)"),
        ("", "the file is empty"),
        ('{"site": "demo"}', "source: missing (and 4 more problems)"),
    ],
)
def test_a_status_file_that_is_not_one_says_what_is_wrong(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "status.json"
    path.write_text(text, encoding="utf-8")
    assert agent_status("--state-dir", str(tmp_path)) == (
        2,
        f"Error: {path} (--state-dir {tmp_path}) is not a status file written by flux agent: "
        f"{problem}\n",
    )
    # A ValueError still, which the other operator commands take as "no status yet".
    with pytest.raises(
        ValueError, match=re.escape(f"not a status file written by flux agent: {problem}")
    ):
        read_status_file(path)


def test_a_missing_status_file_names_the_option_given(tmp_path: Path) -> None:
    path = tmp_path / "nosuch.json"
    code, out = agent_status("--status-file", str(path))
    assert (code, out) == (
        2,
        f"Error: no status file at {path} (--status-file): check the path, or pass the "
        "agent's --state-dir instead\n",
    )
    assert "--state-dir /" not in out


def test_a_folder_as_status_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "status.json").mkdir()
    assert agent_status("--state-dir", str(tmp_path)) == (
        2,
        f"Error: {tmp_path / 'status.json'} (--state-dir {tmp_path}) is not a regular file, "
        "not a status file\n",
    )


def test_a_status_file_of_another_shape_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"site": 3}), encoding="utf-8")
    code, out = agent_status("--status-file", str(path))
    assert code == 2
    assert out == (
        f"Error: {path} (--status-file) is not a status file written by flux agent: "
        "site: Input should be a valid string (and 5 more problems)\n"
    )


def test_a_status_file_in_a_running_agents_folder_is_that_agents(tmp_path: Path) -> None:
    # An agent holds its state folder (elsewhere than the default) and has written its
    # status there: --status-file alone asks that folder whether the agent runs.
    state = tmp_path / "state"
    state.mkdir()
    paths = StatePaths(state)
    agent = AgentStatus(
        clock=ManualClock(datetime(2024, 1, 15, tzinfo=UTC)),
        site="demo",
        source="file",
        status_file=paths.status_file,
    )
    agent.flush(force=True)
    with BatteryLock(state):
        code, out = agent_status("--status-file", str(paths.status_file), "--output", "json")
        doc = json.loads(out)
        assert doc["agent_running"] is True and doc["agent_pid"] == os.getpid()
        assert code == 1  # running, but a fresh status is not Ready
        # A state folder named as well is asked instead.
        elsewhere = tmp_path / "other"
        elsewhere.mkdir()
        _, out = agent_status(
            "--status-file", str(paths.status_file), "--state-dir", str(elsewhere), "-o", "json"
        )
        assert json.loads(out)["agent_running"] is False
    _, out = agent_status("--status-file", str(paths.status_file), "--output", "json")
    assert json.loads(out)["agent_running"] is False
