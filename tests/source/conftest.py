"""Real git repositories in temporary folders, standing in for a site's config repo."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.source.controller import GitSource, TickHealth
from reconciler.source.settings import SourceSettings

ROOT = Path(__file__).resolve().parents[2]
DEMO_TEXT = (ROOT / "sites" / "demo.yaml").read_text(encoding="utf-8")
SITE_PATH = "sites/demo.yaml"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Flux Test",
    "GIT_AUTHOR_EMAIL": "test@flux.invalid",
    "GIT_COMMITTER_NAME": "Flux Test",
    "GIT_COMMITTER_EMAIL": "test@flux.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def demo_variant(homes: int) -> str:
    """The demo site with a different number of homes: a valid, distinct revision."""
    assert "  homes: 54\n" in DEMO_TEXT
    return DEMO_TEXT.replace("  homes: 54\n", f"  homes: {homes}\n")


@dataclass
class Upstream:
    """The config repository people push to."""

    path: Path

    def commit(
        self,
        text: str | None,
        message: str = "change",
        *,
        signing_key: Path | None = None,
        path: str = SITE_PATH,
    ) -> str:
        """Write (or, with None, delete) the site file and commit; return the sha."""
        target = self.path / path
        if text is None:
            git(self.path, "rm", "-q", path)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            git(self.path, "add", path)
        args = ["commit", "-q", "--allow-empty", "-m", message]
        if signing_key is not None:
            args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}", *args, "-S"]
        git(self.path, *args)
        return git(self.path, "rev-parse", "HEAD")

    def force_reset(self, sha: str) -> None:
        git(self.path, "reset", "-q", "--hard", sha)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def make_settings(upstream: Upstream | Path, state_dir: Path, **extra: object) -> SourceSettings:
    repo = upstream.path if isinstance(upstream, Upstream) else upstream
    data: dict[str, object] = {
        "repo": str(repo),
        "site": "demo",
        "state_dir": state_dir,
        "health_gate_ticks": 3,
        "interval_s": 60,
        "jitter_s": 0,
    }
    data.update(extra)
    return SourceSettings.model_validate(data)


SourceFactory = Callable[..., GitSource]


@pytest.fixture
def make_source(upstream: Upstream, state_dir: Path, clock: ManualClock) -> SourceFactory:
    def factory(**extra: object) -> GitSource:
        return GitSource(make_settings(upstream, state_dir, **extra), clock=clock)

    return factory


def tick(clock: ManualClock, sha: str | None = None, detail: str = "", **bad: bool) -> TickHealth:
    """A tick 4 s after the last: healthy, except for the fields given (``grid_ok=False``)."""
    clock.advance(4)
    fields = {"battery_ok": True, "grid_ok": True, "tracking_ok": True, "envelope_ok": True}
    fields.update(bad)
    return TickHealth(at=clock.now(), detail=detail, sha=sha, **fields)


def healthy(clock: ManualClock, sha: str | None = None) -> TickHealth:
    return tick(clock, sha)


def unhealthy(clock: ManualClock, detail: str = "battery stopped following") -> TickHealth:
    return tick(clock, detail=detail, tracking_ok=False)


def promote(source: GitSource, clock: ManualClock) -> None:
    """Feed healthy ticks until the staged revision becomes last-known-good."""
    for _ in range(source.status().snapshot().health_gate_required):
        source.observe_tick(healthy(clock))


def keypair(folder: Path, name: str) -> Path:
    """An SSH signing key (ed25519, no passphrase) made with ssh-keygen."""
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return key


def allowed_signers(folder: Path, *keys: Path) -> Path:
    """An allowed-signers file naming ``keys`` (the committer's e-mail of the test repos)."""
    signers = folder / "allowed_signers"
    lines = [
        f'test@flux.invalid namespaces="git" {k.with_suffix(".pub").read_text().strip()}'
        for k in keys
    ]
    signers.write_text("\n".join(lines) + "\n")
    return signers


async def running_on(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    message: str,
    **settings: object,
) -> tuple[GitSource, str]:
    """A source whose first commit (the demo site) passed the health gate: (source, sha)."""
    sha = upstream.commit(DEMO_TEXT, message)
    source = make_source(**settings)
    await source.sync_once()
    promote(source, clock)
    return source, sha
