"""The desired state: a site file's bytes at a git ref (read with gitpython, so an
uncommitted edit is not "desired"), or a site file given by path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import git
from git.exc import BadName, BadObject

from reconciler.config.model import Site
from reconciler.source.gittree import file_names, read_blob
from reconciler.source.validate import validate_text


class DiffError(Exception):
    """A problem the user can fix (bad ref, missing site, unreachable database): the
    message says what is wrong and what to do. The CLI prints it and exits 2."""


def file_sha(data: bytes) -> str:
    """The revision id a file-source agent reports for these bytes: ``file:<sha256[:12]>``."""
    return "file:" + hashlib.sha256(data).hexdigest()[:12]


def site_path(site_id: str) -> str:
    return f"sites/{site_id}.yaml"


@dataclass(frozen=True)
class Desired:
    """A valid site at a revision. ``commit`` is the ref's commit sha (None for a path
    outside git); ``data`` the file's bytes; ``rel_path`` where it lives in the repo."""

    site: Site
    data: bytes
    ref: str
    commit: str | None
    rel_path: str
    repo: git.Repo | None = None

    @property
    def file_sha(self) -> str:
        return file_sha(self.data)

    @property
    def revision(self) -> str:
        return self.commit or self.file_sha

    def content_at(self, sha: str) -> bytes | None:
        """The site file's bytes at another commit of the repo; None if unknown there."""
        if self.repo is None:
            return None
        try:
            return read_blob(self.repo.commit(sha).tree, self.rel_path)
        except (BadName, BadObject, ValueError, git.GitCommandError):
            return None

    def is_ancestor(self, sha: str) -> bool | None:
        """Whether commit ``sha`` is in the history of the ref (None if unknown)."""
        if self.repo is None or self.commit is None:
            return None
        try:
            return bool(self.repo.is_ancestor(self.repo.commit(sha), self.repo.commit(self.commit)))
        except (BadName, BadObject, git.GitCommandError, ValueError):
            return None


def open_repo(path: str | Path) -> git.Repo:
    try:
        return git.Repo(path)
    except git.NoSuchPathError:
        raise DiffError(f"--repo {path}: no such folder; give the config repository") from None
    except git.InvalidGitRepositoryError:
        raise DiffError(
            f"--repo {path}: not a git repository; give the config repository (the folder "
            "that holds sites/)"
        ) from None


def resolve_commit(repo: git.Repo, ref: str) -> git.Commit:
    try:
        return repo.commit(ref)
    except (BadName, BadObject, ValueError, git.GitCommandError):
        raise DiffError(
            f"--ref {ref}: no such commit, branch or tag in {repo.working_dir}; "
            "check `git log` / `git branch`"
        ) from None


def _validated(data: bytes, rel_path: str, ref: str, commit: str | None) -> Site:
    checked = validate_text(data, rel_path)
    if checked.site is None:
        first = checked.errors[0] if checked.errors else "not a valid site file"
        more = f" (and {len(checked.errors) - 1} more)" if len(checked.errors) > 1 else ""
        at = f" at {ref}" if commit else ""
        raise DiffError(
            f"{rel_path}{at} is not a valid site file: {first}{more}; run `flux validate`"
        )
    return checked.site


def load_desired(site: str, *, repo: str | Path = ".", ref: str = "HEAD") -> Desired:
    """The desired state of ``site``: a site id (``sites/<id>.yaml`` at ``ref`` in
    ``repo``) or a path to a site file (read from disk as it is). Raises DiffError."""
    path = Path(site)
    looks_like_path = site.endswith((".yaml", ".yml")) or "/" in site
    if looks_like_path:
        if not path.is_file():
            raise DiffError(f"{site}: no such site file; give a site id or a path to a file")
        data = path.read_bytes()
        rel = str(path)
        gitrepo: git.Repo | None = None
        try:
            gitrepo = git.Repo(repo)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError):
            gitrepo = None
        if gitrepo is not None and gitrepo.working_tree_dir is not None:
            try:
                rel = str(path.resolve().relative_to(Path(gitrepo.working_tree_dir).resolve()))
            except ValueError:
                gitrepo = None
        parsed = _validated(data, str(path), "disk", None)
        return Desired(parsed, data, str(path), None, rel, gitrepo)
    gitrepo = open_repo(repo)
    commit = resolve_commit(gitrepo, ref)
    rel = site_path(site)
    committed = read_blob(commit.tree, rel)
    if committed is None:
        raise DiffError(
            f"site {site!r}: no {rel} at {ref} ({commit.hexsha[:12]}) in "
            f"{gitrepo.working_dir}; is it committed? (`flux status` lists the sites)"
        )
    parsed = _validated(committed, rel, ref, commit.hexsha)
    return Desired(parsed, committed, ref, commit.hexsha, rel, gitrepo)


def site_ids(repo: git.Repo, ref: str = "HEAD") -> tuple[str, list[str]]:
    """The commit sha of ``ref`` and the ids of every ``sites/*.yaml`` in it, sorted."""
    commit = resolve_commit(repo, ref)
    names = file_names(commit.tree, "sites")
    return commit.hexsha, [n.removesuffix(".yaml") for n in names if n.endswith(".yaml")]
