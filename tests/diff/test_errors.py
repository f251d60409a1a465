"""Errors a user can fix: one clear line on stderr, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.diff.conftest import invoke
from tests.net import free_port
from tests.source.conftest import DEMO_TEXT, Upstream


@pytest.fixture
def repo(upstream: Upstream) -> Path:
    upstream.commit(DEMO_TEXT, "first")
    return upstream.path


def _one_clear_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unreachable_database_exits_2_with_a_clear_message(repo: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    result = invoke("diff", "demo", "--repo", str(repo), "--database-url", url)
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "cannot connect to the database", "--database-url")
    status = invoke("status", "--repo", str(repo), "--database-url", url)
    assert status.exit_code == 2
    _one_clear_line(status.stderr, "cannot connect to the database")


def test_a_database_without_the_schema_says_to_migrate(repo: Path, db_url_empty: str) -> None:
    result = invoke("diff", "demo", "--repo", str(repo), "--database-url", db_url_empty)
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "flux db migrate")


def test_a_missing_site_exits_2(repo: Path) -> None:
    result = invoke("diff", "nowhere", "--repo", str(repo), "--database-url", "postgresql://x")
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "sites/nowhere.yaml", "flux status")


def test_a_bad_ref_exits_2(repo: Path) -> None:
    result = invoke(
        "diff", "demo", "--repo", str(repo), "--ref", "no-such-branch", "--database-url", "x"
    )
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "--ref no-such-branch")


def test_not_a_repository_exits_2(tmp_path: Path) -> None:
    result = invoke("diff", "demo", "--repo", str(tmp_path), "--database-url", "x")
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "not a git repository")


def test_an_uncommitted_edit_is_not_desired(repo: Path, tmp_path: Path) -> None:
    # Broken on disk, fine at HEAD: the blob at the ref is read, so the error is about
    # the database, not the file.
    (repo / "sites" / "demo.yaml").write_text("site: {id: x}\n", encoding="utf-8")
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/flux"
    result = invoke("diff", "demo", "--repo", str(repo), "--database-url", url)
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "cannot connect")
    # Given as a path, the file on disk is what is meant, and it is invalid.
    path = invoke("diff", str(repo / "sites" / "demo.yaml"), "--database-url", url)
    assert path.exit_code == 2
    _one_clear_line(path.stderr, "not a valid site file")


def test_an_invalid_site_at_the_ref_exits_2(upstream: Upstream) -> None:
    upstream.commit(DEMO_TEXT.replace("  tick_s: 4\n", "  tick_s: fast\n"), "oops")
    result = invoke("diff", "demo", "--repo", str(upstream.path), "--database-url", "x")
    assert result.exit_code == 2
    _one_clear_line(result.stderr, "sites/demo.yaml", "control.tick_s", "flux validate")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--window", "soon"], "not a duration"),
        (["--at", "yesterday"], "ISO 8601"),
        (["--at", "0001-01-01T00:00"], "outside the years Flux works with"),
        (["--window", "99999999999d"], "longer than 366 days"),
        ([], "--live"),
        (["--live", "--database-url", "postgresql://x"], "not both"),
    ],
)
def test_bad_flags_exit_2(repo: Path, args: list[str], needle: str) -> None:
    base = ["diff", "demo", "--repo", str(repo)]
    if "--live" not in args and "--database-url" not in args and args:
        base += ["--database-url", "postgresql://x"]
    result = invoke(*base, *args)
    assert result.exit_code == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
