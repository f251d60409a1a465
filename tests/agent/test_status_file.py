"""`flux agent status` on a status file it cannot use: exit 2 and one line that names the
file, the option it came from and the first thing wrong with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.agent.operator import status
from reconciler.status.model import read_status_file


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
