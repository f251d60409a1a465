"""What reconciler/source/mirror.py relies on in gitpython (and in git's messages), pinned
against real repositories in temporary folders.

pyproject allows a range of gitpython releases; when an upgrade changes one of these, this
file fails first and names what moved, before the fetch tests fail for reasons that are
harder to read.
"""

from __future__ import annotations

import inspect
import signal
from pathlib import Path

import git
import pytest

from reconciler.source.mirror import _classify, _clean, _killed_by, _reason, _timed_out
from tests.source.conftest import GIT_ENV
from tests.source.conftest import git as run_git


def _mirror_of(remote: str, tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "mirror", bare=True)
    repo.create_remote("origin", remote)
    return repo


def _fetch_error(repo: git.Repo, *args: str, **kwargs: object) -> git.GitCommandError:
    with pytest.raises(git.GitCommandError) as caught:
        repo.git.fetch(*args, env=dict(GIT_ENV), **kwargs)
    return caught.value


def test_fetch_takes_an_environment_and_a_kill_timeout() -> None:
    params = inspect.signature(git.Git.execute).parameters
    assert "kill_after_timeout" in params and "env" in params


def test_a_fetch_from_a_missing_remote_fails_with_gits_status_and_message(
    tmp_path: Path,
) -> None:
    repo = _mirror_of(str(tmp_path / "nowhere"), tmp_path)
    exc = _fetch_error(repo, "origin", "+refs/heads/main:refs/remotes/origin/main")
    # git exited by itself, with a non-zero status (not a signal, not an exception)
    assert isinstance(exc.status, int) and exc.status > 0
    assert _killed_by(exc) is None and not _timed_out(exc)
    assert isinstance(exc.stderr, str)
    assert _reason(exc) == "RemoteUnreachable"
    cleaned = _clean(exc.stderr)
    assert not cleaned.startswith("stderr:") and "nowhere" in cleaned


def test_a_missing_branch_is_told_apart_by_gits_message(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    run_git(remote, "init", "-q", "-b", "main")
    run_git(remote, "commit", "-q", "--allow-empty", "-m", "first")
    repo = _mirror_of(str(remote), tmp_path)
    exc = _fetch_error(repo, "origin", "+refs/heads/gone:refs/remotes/origin/gone")
    assert isinstance(exc.status, int) and exc.status > 0
    assert _classify(str(exc.stderr)) == "RefNotFound"


def test_a_fetch_killed_by_kill_after_timeout_is_recognisable(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    run_git(remote, "init", "-q", "-b", "main")
    run_git(remote, "commit", "-q", "--allow-empty", "-m", "first")
    # an upload-pack that never answers: git waits on it until gitpython kills both
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nexec sleep 60\n", encoding="utf-8")
    hang.chmod(0o755)
    repo = _mirror_of(str(remote), tmp_path)
    exc = _fetch_error(
        repo,
        f"--upload-pack={hang}",
        "origin",
        "+refs/heads/main:refs/remotes/origin/main",
        kill_after_timeout=1,
    )
    assert exc.status == -signal.SIGKILL
    assert _killed_by(exc) == signal.SIGKILL and _timed_out(exc)
    assert _reason(exc) == "RemoteUnreachable"
