"""A bare mirror of the config repository, fetched with gitpython.

Only the followed ref is fetched, with a forcing refspec (``+``) so a force-pushed branch
is seen (whether it is followed is the source's decision: see :meth:`GitMirror.relation`).
The first fetch into an empty mirror is at depth 1 where the remote allows it; later ones
fetch only the new commits, so the history from there on is known and a fast-forward can
be told from a rollback. Nothing is checked out: files are read from the commit's tree, so
a half-written work tree can never be read.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import git

from reconciler.source.gittree import file_names, read_blob
from reconciler.source.paths import StatePaths
from reconciler.source.settings import SourceSettings


class FetchError(Exception):
    """Fetching failed; ``reason`` is a condition reason (RemoteUnreachable, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


#: Where the mirror keeps the last-known-good referenced: its signature is checked again at
#: every start, so git's garbage collection must never drop it, wherever the branch went.
PIN_REF = "refs/flux/last-known-good"

Move = Literal["forward", "rollback", "diverged"]
"""How the followed ref moved from the revision in control: ``forward`` (a fast-forward:
the old commit is an ancestor of the new), ``rollback`` (the new commit is an ancestor of
the old) or ``diverged`` (neither: a rewritten history)."""


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    summary: str
    author: str


# git exits with one status (128, "fatal") for every failed fetch: a missing ref, refused
# credentials and an unreachable host alike. Its message is all that tells them apart, so
# these patterns match git's own stderr (tests/source/test_git_contract.py pins them).
_REASONS: tuple[tuple[str, str], ...] = (
    (r"couldn't find remote ref|not our ref|no such ref|unknown revision", "RefNotFound"),
    (
        r"permission denied|authentication failed|could not read username|"
        r"host key verification failed|terminal prompts disabled",
        "AuthenticationFailed",
    ),
    (
        r"could not resolve|connection refused|connection timed out|network is unreachable|"
        r"could not read from remote|does not appear to be a git repository|"
        r"no such file or directory|not a git repository|timed out|unable to access",
        "RemoteUnreachable",
    ),
)


def _classify(stderr: str) -> str:
    text = stderr.lower()
    for pattern, reason in _REASONS:
        if re.search(pattern, text):
            return reason
    return "FetchFailed"


def _killed_by(exc: git.GitCommandError) -> int | None:
    """The signal that killed git, None when it exited by itself (gitpython passes on the
    negative status subprocess reports for a signal)."""
    status = exc.status
    if isinstance(status, int) and status < 0:
        return -status
    return None


def _timed_out(exc: git.GitCommandError) -> bool:
    # gitpython's kill_after_timeout is the one thing here that SIGKILLs git (it kills git
    # and its children); it also swaps stderr for its own "did not complete" text, which
    # is not relied on.
    return _killed_by(exc) == signal.SIGKILL


def _reason(exc: git.GitCommandError) -> str:
    """The SourceReady reason for a failed fetch: by how git ended first, by its message
    only when it exited by itself."""
    if _timed_out(exc):
        return "RemoteUnreachable"
    if _killed_by(exc) is not None:
        return "FetchFailed"
    return _classify(str(exc.stderr or exc))


def _clean(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    lines = [ln.removeprefix("stderr: ").strip("'").strip() for ln in lines]
    return "; ".join(ln for ln in lines if ln)[-500:] or "no output from git"


def _parents(repo: git.Repo, sha: str) -> list[str] | None:
    """The parents recorded in the commit object itself, or None when the mirror does not
    have the commit. (A shallow mirror's grafts hide the parents from rev-list and
    merge-base, even when the parent commits are there.)"""
    try:
        stream = repo.odb.stream(bytes.fromhex(sha))
    except ValueError:  # not hex, or not in the object store
        return None
    if stream.type != b"commit":
        return None
    header = stream.read().split(b"\n\n", 1)[0]
    return [line[7:].decode("ascii") for line in header.splitlines() if line.startswith(b"parent ")]


def _descends(repo: git.Repo, new: str, old: str) -> bool | None:
    """Whether ``old`` is ``new`` or one of its ancestors, walking the commits the mirror
    has: True, False (the whole history of ``new`` is there, without ``old``), or None
    (a commit on the way is missing, so it cannot be told)."""
    todo, seen, complete = [new], set(), True
    while todo:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in seen:
            continue
        seen.add(sha)
        parents = _parents(repo, sha)
        if parents is None:
            complete = False
        else:
            todo.extend(parents)
    return False if complete else None


class GitMirror:
    """The agent's copy of the config repo (a bare repository in the state folder)."""

    def __init__(self, settings: SourceSettings, paths: StatePaths) -> None:
        self.settings = settings
        self.paths = paths
        self._shallow_ok = settings.shallow

    # ------------------------------------------------------------------ environment

    def env(self) -> dict[str, str]:
        """Environment for git: never prompt; the SSH key from the settings if one is named."""
        env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
        s = self.settings
        if s.ssh_key_file is not None:
            cmd = [
                "ssh",
                "-i",
                str(s.ssh_key_file),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
            ]
            if s.ssh_known_hosts_file is not None:
                cmd += [
                    "-o",
                    f"UserKnownHostsFile={s.ssh_known_hosts_file}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ]
            else:
                cmd += ["-o", "StrictHostKeyChecking=accept-new"]
            env["GIT_SSH_COMMAND"] = shlex.join(cmd)
        return env

    def remote_url(self) -> str:
        repo = self.settings.repo
        if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
            return repo
        return str(Path(repo).expanduser().resolve())

    def refspec(self) -> tuple[str, str]:
        """(refspec, local ref) for what is followed; ``+`` so force-pushes are taken."""
        s = self.settings
        if s.tag:
            local = f"refs/tags/{s.tag}"
            return f"+refs/tags/{s.tag}:{local}", local
        branch = s.branch or "main"
        local = f"refs/remotes/origin/{branch}"
        return f"+refs/heads/{branch}:{local}", local

    # ------------------------------------------------------------------ the repo

    def open(self) -> git.Repo:
        """Open the mirror, creating it (or recreating a damaged one)."""
        path = self.paths.repo_dir
        if path.exists():
            try:
                repo = git.Repo(path)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                shutil.rmtree(path, ignore_errors=True)
            else:
                self._set_remote(repo)
                return repo
        path.parent.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(path, bare=True)
        self._set_remote(repo)
        return repo

    def _set_remote(self, repo: git.Repo) -> None:
        url = self.remote_url()
        names = [r.name for r in repo.remotes]
        if "origin" not in names:
            repo.create_remote("origin", url)
        elif repo.remotes.origin.url != url:
            repo.remotes.origin.set_url(url)

    def fetch(self) -> str:
        """Fetch the followed ref; return its commit sha (raises FetchError)."""
        try:
            repo = self.open()
        except (git.GitCommandError, OSError) as exc:
            raise FetchError(
                "FetchFailed", f"cannot create the mirror in {self.paths.repo_dir}: {exc}"
            ) from None
        spec, local = self.refspec()
        where = f"{self.settings.ref_name} of {self.settings.redacted_repo()}"
        # Only an empty mirror is fetched shallow: later fetches bring just the new commits
        # and keep the history that links them to what the agent already has.
        shallow = self._shallow_ok and self._resolve(repo, local) is None
        try:
            self._fetch_ref(repo, spec, shallow=shallow)
        except git.GitCommandError as exc:
            # A remote that cannot serve a shallow fetch (dumb HTTP, old servers): fall back
            # to a full fetch once and remember it. Other failures are final.
            if not shallow or _reason(exc) != "FetchFailed":
                raise self._fetch_error(exc, f"fetching {where}") from None
            try:
                self._fetch_ref(repo, spec, shallow=False)
            except git.GitCommandError as full:
                raise self._fetch_error(full, f"fetching {where}") from None
            self._shallow_ok = False
        sha = self._resolve(repo, f"{local}^{{commit}}")
        if sha is None:
            raise FetchError("RefNotFound", f"{where} does not name a commit")
        return sha

    def _fetch_ref(self, repo: git.Repo, spec: str, *, shallow: bool) -> None:
        """One ``git fetch`` of ``spec``, killed after the fetch timeout (raises
        GitCommandError)."""
        args = ["--no-tags", "--prune"]
        if shallow:
            args.append("--depth=1")
        repo.git.fetch(
            *args, "origin", spec, env=self.env(), kill_after_timeout=self.settings.fetch_timeout_s
        )

    def _fetch_error(self, exc: git.GitCommandError, what: str) -> FetchError:
        reason = _reason(exc)
        signum = _killed_by(exc)
        if _timed_out(exc):
            detail = f"git fetch did not finish within {self.settings.fetch_timeout_s:g} s"
        elif signum is not None:
            detail = f"git was killed by signal {signum}"
        else:
            detail = _clean(str(exc.stderr or exc))
        return FetchError(reason, f"{what} failed: {detail}")

    @staticmethod
    def _resolve(repo: git.Repo, name: str) -> str | None:
        try:
            return str(repo.git.rev_parse("--verify", "--quiet", name))
        except git.GitCommandError:
            return None

    # ------------------------------------------------------------------ history

    def has_commit(self, sha: str) -> bool:
        return _parents(self.open(), sha) is not None

    def relation(self, old: str, new: str) -> Move:
        """How the followed ref moved from ``old`` (the revision in control) to ``new``.

        A shallow mirror (a new one, or one that lost ``old``) fetches the followed ref's
        whole history first when that is needed to tell; raises FetchError if that fails.
        A new commit that cannot be shown to descend from ``old`` is not a fast-forward.
        """
        repo = self.open()
        found = _descends(repo, new, old)
        if found is None and self._is_shallow(repo):
            self._unshallow(repo)
            found = _descends(repo, new, old)
        if found:
            return "forward"
        if _descends(repo, old, new):
            return "rollback"
        return "diverged"

    @staticmethod
    def _is_shallow(repo: git.Repo) -> bool:
        return str(repo.git.rev_parse("--is-shallow-repository")).strip() == "true"

    def _unshallow(self, repo: git.Repo) -> None:
        spec, _local = self.refspec()
        try:
            repo.git.fetch(
                "--no-tags",
                "--unshallow",
                "origin",
                spec,
                env=self.env(),
                kill_after_timeout=self.settings.fetch_timeout_s,
            )
        except git.GitCommandError as exc:
            where = f"{self.settings.ref_name} of {self.settings.redacted_repo()}"
            raise self._fetch_error(exc, f"fetching the history of {where}") from None

    def pin(self, sha: str) -> None:
        """Keep ``sha`` referenced (:data:`PIN_REF`) so garbage collection never drops it."""
        repo = self.open()
        if self._resolve(repo, PIN_REF) != sha and _parents(repo, sha) is not None:
            repo.git.update_ref(PIN_REF, sha)

    def read_file(self, sha: str, path: str) -> bytes | None:
        """The file's bytes at ``sha`` (links within the repository followed), or None when
        the commit has no such file."""
        return read_blob(self.open().commit(sha).tree, path)

    def list_folder(self, sha: str, folder: str) -> list[str]:
        """Names of the files directly in ``folder`` at ``sha`` (empty when there is none)."""
        return file_names(self.open().commit(sha).tree, folder)

    def commit_info(self, sha: str) -> CommitInfo:
        commit = self.open().commit(sha)
        summary = commit.summary
        return CommitInfo(
            sha=sha,
            summary=summary if isinstance(summary, str) else summary.decode(errors="replace"),
            author=str(commit.author),
        )
