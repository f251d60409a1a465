"""A site file kept in git as a symbolic link to another file of the repository (as
Flux's own sites/demo.yaml is) is read as the file it links to, by the agent and by
`flux diff`; a link that leaves the repository is no file at all."""

from __future__ import annotations

import os
from pathlib import Path

from git import Repo

from reconciler.diff.desired import load_desired, site_ids
from reconciler.source.gittree import read_blob
from tests.source.conftest import (
    DEMO_TEXT,
    SITE_PATH,
    SourceFactory,
    Upstream,
    demo_variant,
    git,
)

SHARED = "shared/demo-site.yaml"


def commit_link(upstream: Upstream, target: str, path: str = SITE_PATH) -> str:
    """Commit ``path`` as a symbolic link to ``target`` (relative to the link's folder)."""
    link = upstream.path / path
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)
    git(upstream.path, "add", path)
    git(upstream.path, "commit", "-q", "-m", f"{path} -> {target}")
    return git(upstream.path, "rev-parse", "HEAD")


async def test_the_agent_applies_a_site_file_kept_as_a_link(
    upstream: Upstream, make_source: SourceFactory
) -> None:
    upstream.commit(demo_variant(33), path=SHARED)
    sha = commit_link(upstream, f"../{SHARED}")
    assert git(upstream.path, "ls-files", "-s", SITE_PATH).startswith("120000")
    source = make_source()
    await source.sync_once()
    current = source.current()
    assert current is not None and current.sha == sha
    assert current.site.site.homes == 33  # the linked file, not the link's text


def test_flux_diff_reads_a_linked_site_file_at_a_ref(upstream: Upstream) -> None:
    upstream.commit(DEMO_TEXT, path=SHARED)
    sha = commit_link(upstream, f"../{SHARED}")
    desired = load_desired("demo", repo=upstream.path, ref=sha)
    assert desired.site.site.id == "demo" and desired.data == DEMO_TEXT.encode()
    assert site_ids(git_repo(upstream))[1] == ["demo"]


def test_a_link_that_leaves_the_repository_is_no_file(upstream: Upstream, tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text(DEMO_TEXT, encoding="utf-8")
    repo = git_repo(upstream)
    for target in (str(outside), "../../secret.yaml", "../sites/../../x.yaml"):
        sha = commit_link(upstream, target)
        assert read_blob(repo.commit(sha).tree, SITE_PATH) is None, target
    # A loop of links ends too.
    commit_link(upstream, "b.yaml", "sites/a.yaml")
    sha = commit_link(upstream, "a.yaml", "sites/b.yaml")
    assert read_blob(repo.commit(sha).tree, "sites/a.yaml") is None


def git_repo(upstream: Upstream) -> Repo:
    return Repo(upstream.path)
