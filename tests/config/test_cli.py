"""`flux validate`, `flux schema` and `flux schedule` through click and one real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SITES = ROOT / "sites"
CORPUS = Path(__file__).parent / "corpus"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_validate_sites_folder_passes() -> None:
    code, out = run("validate", str(SITES))
    assert code == 0, out
    assert out.splitlines()[-1].startswith(f"{len(list(SITES.glob('*.yaml')))} file(s): ")
    assert " 0 invalid; 0 error(s)" in out


def test_validate_defaults_to_sites_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sites").mkdir()
    shutil.copy(SITES / "hmce.yaml", tmp_path / "sites" / "hmce.yaml")
    monkeypatch.chdir(tmp_path)
    assert run("validate") == (
        0,
        "1 file(s): 1 valid, 0 invalid; 0 error(s), 0 warning(s)\n",
    )


def test_validate_invalid_file_exits_1_with_the_positional_message() -> None:
    path = CORPUS / "unsorted_curve.yaml"
    code, out = run("validate", str(SITES / "hmce.yaml"), str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:49:7: schedule[1].params.charge_curve: prices must increase; got 6 after 12",
        "2 file(s): 1 valid, 1 invalid; 1 error(s), 0 warning(s)",
    ]


@pytest.fixture
def priceless_demo(tmp_path: Path) -> Path:
    """The demo without its markets section: its two NIV chase entries then have no price
    to act on, which is legal but worth two warnings."""
    text = (SITES / "demo.yaml").read_text(encoding="utf-8")
    start, end = text.index("markets:\n"), text.index("control:\n")
    path = tmp_path / "demo.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return path


def test_validate_shows_warnings_separately_and_they_do_not_fail(priceless_demo: Path) -> None:
    path = priceless_demo
    code, out = run("validate", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "warnings (these do not make a file invalid):"
    assert lines[2].startswith(f"{path}:")
    assert "never active without a price" in lines[2]


@pytest.mark.parametrize("args", [["nowhere.yaml"], ["--format", "xml"]])
def test_validate_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    code, out = run("validate", *[str(tmp_path / a) if a.endswith("yaml") else a for a in args])
    assert code == 2
    assert "Error" in out


def test_validate_missing_path_names_it(tmp_path: Path) -> None:
    code, out = run("validate", str(tmp_path / "nowhere.yaml"))
    assert code == 2
    assert f"no such file or folder: '{tmp_path / 'nowhere.yaml'}'" in out


def test_validate_empty_folder_exits_2(tmp_path: Path) -> None:
    code, out = run("validate", str(tmp_path))
    assert code == 2
    assert "no *.yaml files in folder" in out


def test_validate_json_format(priceless_demo: Path) -> None:
    path = CORPUS / "bad_timezone.yaml"
    code, out = run("validate", "--format", "json", str(path), str(priceless_demo))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    bad, demo = data["files"]
    assert bad == {
        "file": str(path),
        "valid": False,
        "errors": [
            {
                "line": 5,
                "col": 13,
                "path": "site.timezone",
                "message": (
                    "unknown timezone 'Europe/Londn'; use an IANA name such as Europe/London"
                ),
            }
        ],
        "warnings": [],
    }
    assert demo["valid"] is True
    assert len(demo["warnings"]) == 2


def test_validate_github_format_prints_workflow_annotations(priceless_demo: Path) -> None:
    path = CORPUS / "bad_timezone.yaml"
    code, out = run("validate", "--format", "github", str(path), str(priceless_demo))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"::error file={path},line=5,col=13::site.timezone: unknown timezone 'Europe/Londn'; "
        "use an IANA name such as Europe/London"
    )
    assert lines[1].startswith(f"::warning file={priceless_demo},line=93,col=11::")


def test_schema_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "schemas" / "site.schema.json"
    assert run("schema", "--output", str(target)) == (0, f"wrote {target}\n")
    assert target.read_text() == (ROOT / "schemas" / "site.schema.json").read_text()
    assert run("schema", "--check", "--output", str(target))[0] == 0
    target.write_text("{}\n")
    code, out = run("schema", "--check", "--output", str(target))
    assert code == 1
    assert "is stale; run `flux schema`" in out


def _schedule_json(*args: str) -> dict[str, object]:
    code, out = run("schedule", *args, "--sites-dir", str(SITES), "--output", "json")
    assert code == 0, out
    data: dict[str, object] = json.loads(out)
    return data


def _hours_per_day(data: dict[str, object]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for seg in data["segments"]:  # type: ignore[attr-defined]
        totals[seg["start"][:10]] = totals.get(seg["start"][:10], 0) + seg["duration_s"] / 3600
    return totals


def test_schedule_shows_the_25_hour_autumn_day() -> None:
    data = _schedule_json("wlce", "--from", "2024-10-27", "--days", "2")
    assert _hours_per_day(data) == {"2024-10-27": 25.0, "2024-10-28": 24.0}
    assert data["days"] == [
        {"date": "2024-10-27", "hours": 25.0, "settlement_periods": 50},
        {"date": "2024-10-28", "hours": 24.0, "settlement_periods": 48},
    ]
    segments = data["segments"]
    assert segments[0]["start"] == "2024-10-27T00:00:00+01:00"  # type: ignore[index]
    assert segments[0]["end"] == "2024-10-27T01:00:00+00:00"  # type: ignore[index]
    assert segments[0]["duration_s"] == 7200  # type: ignore[index]
    red = [s for s in segments if s["winner"] and s["winner"]["label"] == "red-band discharge"]  # type: ignore[attr-defined]
    assert [(s["start"], s["end"]) for s in red] == [
        ("2024-10-28T17:00:00+00:00", "2024-10-28T19:00:00+00:00")
    ]
    assert red[0]["import_p_per_kwh"] == pytest.approx(11.385 + 1.5)


def test_schedule_shows_the_23_hour_spring_day() -> None:
    data = _schedule_json(str(SITES / "hmce.yaml"), "--from", "2024-03-31")
    assert _hours_per_day(data) == {"2024-03-31": 23.0}
    assert data["days"] == [{"date": "2024-03-31", "hours": 23.0, "settlement_periods": 46}]


def test_schedule_table_names_winners_priorities_and_day_lengths() -> None:
    code, out = run(
        "schedule", "wlce", "--from", "2024-10-27", "--days", "2", "--sites-dir", str(SITES)
    )
    assert code == 0
    assert "2024-10-27 00:00 +01:00" in out
    assert "2024-10-27 total" in out and "25:00" in out and "50 settlement periods" in out
    assert "red-band discharge (70)" in out
    assert "NIV chase (60)" in out


def test_schedule_markdown_for_pull_requests() -> None:
    code, out = run(
        "schedule",
        "hmce",
        "--from",
        "2024-10-28",
        "--output",
        "markdown",
        "--sites-dir",
        str(SITES),
    )
    assert code == 0
    assert (
        "| 2024-10-28 17:00 +00:00 | 2024-10-28 19:00 +00:00 | 2:00 | red-band discharge (70) |"
        in out
    )
    assert "| **2024-10-28 total** | | **24:00** | 48 settlement periods | | | |" in out


def test_schedule_unknown_site_is_a_usage_error() -> None:
    code, out = run("schedule", "nosuchsite", "--sites-dir", str(SITES))
    assert code == 2
    assert "no site 'nosuchsite'" in out


def test_schedule_refuses_days_outside_the_calendar_it_knows() -> None:
    for day, message in (
        ("0001-01-01", "outside the years Flux works with (1970-2199)"),
        ("9999-12-31", "outside the years Flux works with (1970-2199)"),
        ("2024-02-30", "'2024-02-30' is not a day of the calendar"),
    ):
        code, out = run("schedule", "demo", "--sites-dir", str(SITES), "--from", day)
        assert code == 2 and message in out, (day, out)
        assert "Traceback" not in out


def test_schedule_of_an_invalid_site_exits_2() -> None:
    # As plan and backtest: a command on a file that does not validate is a user error.
    code, out = run("schedule", str(CORPUS / "bad_timezone.yaml"))
    assert code == 2
    assert "unknown timezone 'Europe/Londn'" in out
    assert "is not valid; fix it first" in out


def test_real_flux_process_validates(tmp_path: Path) -> None:
    flux = Path(sys.executable).parent / "flux"
    ok = subprocess.run([str(flux), "validate", str(SITES)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        [str(flux), "validate", "--format", "github", str(CORPUS / "tabs.yaml")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (
        f"::error file={CORPUS / 'tabs.yaml'},line=6,col=1::tab in indentation; indent with spaces"
    )
    assert "Traceback" not in bad.stderr


def test_parallel_validation_reports_the_same_as_one_file_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler.config import commands
    from reconciler.config.loader import check_site_file

    monkeypatch.setattr(commands, "PARALLEL_FROM", 2)
    code, out = run("validate", "--format", "json", str(CORPUS), str(SITES))
    assert code == 1
    files = json.loads(out)["files"]
    expected = sorted(CORPUS.glob("*.yaml")) + sorted(SITES.glob("*.yaml"))
    assert [f["file"] for f in files] == [str(p) for p in expected]
    for entry, path in zip(files, expected, strict=True):
        errors = [p.message for p in check_site_file(path)[1] if p.severity == "error"]
        assert [e["message"] for e in entry["errors"]] == errors


def test_schedule_markdown_escapes_a_bar_in_an_entry_name(tmp_path: Path) -> None:
    text = (ROOT / "sites" / "hmce.yaml").read_text()
    assert "  - name: red-band discharge\n" in text
    site = tmp_path / "hmce.yaml"
    site.write_text(text.replace("  - name: red-band discharge\n", "  - name: red | band\n"))
    code, out = run(
        "schedule", str(site), "--from", "2024-01-15", "--days", "1", "--output", "markdown"
    )
    assert code == 0, out
    rows = [line for line in out.splitlines() if "red \\| band" in line]
    assert rows, out
    # Every row keeps its 7 columns: the escaped bar is not a column break.
    assert all(line.replace("\\|", "").count("|") == 8 for line in rows)


def _flux_process(*args: str) -> subprocess.CompletedProcess[str]:
    """flux in a process of its own, which a test can give up on (a read that hangs)."""
    command = [sys.executable, "-m", "reconciler", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_validate_refuses_a_fifo_instead_of_waiting_on_it(tmp_path: Path) -> None:
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    done = _flux_process("validate", str(fifo))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"Error: '{fifo}' is not a regular file (a FIFO, socket or device); "
        "name a site file or a folder of them"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_validate_of_a_folder_skips_what_is_not_a_regular_file(tmp_path: Path) -> None:
    shutil.copy(SITES / "hmce.yaml", tmp_path / "hmce.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder.yml").mkdir()
    done = _flux_process("validate", str(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "1 file(s): 1 valid, 0 invalid; 0 error(s), 0 warning(s)\n",
        "",
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_command_given_a_fifo_as_site_file_says_so(tmp_path: Path) -> None:
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    code = (
        "from reconciler.config.loader import check_site_file\n"
        f"print(check_site_file({str(fifo)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "not a regular file; a site file is a YAML file" in done.stdout, done.stderr


def test_a_folder_given_as_site_is_named_as_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "bad" / "dir.yaml"
    folder.mkdir(parents=True)
    code, out = run("schedule", str(folder))
    assert code == 2
    assert out.splitlines()[-1] == f"Error: {folder} is a folder, not a site file"
    # The same for an id whose sites/<id>.yaml is a folder.
    code, out = run("schedule", "dir", "--sites-dir", str(folder.parent))
    assert code == 2
    assert out.splitlines()[-1] == f"Error: {folder} is a folder, not a site file"


def test_a_missing_site_path_is_not_looked_up_as_an_id(tmp_path: Path) -> None:
    code, out = run("schedule", "nodir/x.yaml", "--sites-dir", str(tmp_path))
    assert code == 2
    assert out.splitlines()[-1] == "Error: no site file nodir/x.yaml: no such file"
