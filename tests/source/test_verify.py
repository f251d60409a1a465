"""Signed commits: SSH signing keys made with ssh-keygen, checked by git verify-commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.agent.status import ConditionType as C
from reconciler.clock import ManualClock
from reconciler.source.settings import SourceSettings
from tests.source.conftest import DEMO_TEXT, SourceFactory, Upstream, demo_variant, promote

if shutil.which("ssh-keygen") is None:  # pragma: no cover - reported, not hidden
    pytest.fail("ssh-keygen is missing: install openssh-client to test signed commits")


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return key


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(allowed key, stranger's key, allowed-signers file naming only the first)."""
    folder = tmp_path / "keys"
    folder.mkdir()
    allowed = keypair(folder, "release-manager")
    stranger = keypair(folder, "stranger")
    public = allowed.with_suffix(".pub").read_text().strip()
    signers = folder / "allowed_signers"
    signers.write_text(f'test@flux.invalid namespaces="git" {public}\n')
    return allowed, stranger, signers


async def test_only_commits_signed_by_an_allowed_key_are_applied(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    keys: tuple[Path, Path, Path],
) -> None:
    allowed, stranger, signers = keys
    good = upstream.commit(DEMO_TEXT, "signed", signing_key=allowed)
    source = make_source(verify="ssh", allowed_signers_file=signers)
    await source.sync_once()
    assert source.status().condition(C.VERIFIED).reason == "Signed"
    current = source.current()
    assert current is not None and current.sha == good
    promote(source, clock)

    unsigned = upstream.commit(demo_variant(40), "not signed")
    await source.sync_once()
    verified = source.status().condition(C.VERIFIED)
    assert (verified.status, verified.reason) == ("False", "Unsigned")
    assert unsigned[:12] in verified.message
    assert source.status().condition(C.APPLIED).reason == "VerificationFailed"
    current = source.current()
    assert current is not None and current.sha == good

    upstream.commit(demo_variant(41), "signed by someone else", signing_key=stranger)
    await source.sync_once()
    verified = source.status().condition(C.VERIFIED)
    assert (verified.status, verified.reason) == ("False", "BadSignature")
    current = source.current()
    assert current is not None and current.sha == good

    fixed = upstream.commit(demo_variant(42), "signed again", signing_key=allowed)
    await source.sync_once()
    assert source.status().condition(C.VERIFIED).status == "True"
    current = source.current()
    assert current is not None and current.sha == fixed


async def test_a_missing_signers_file_refuses_everything(
    upstream: Upstream, make_source: SourceFactory, tmp_path: Path
) -> None:
    upstream.commit(DEMO_TEXT, "unsigned")
    source = make_source(verify="ssh", allowed_signers_file=tmp_path / "nope")
    await source.sync_once()
    assert source.status().condition(C.VERIFIED).reason == "VerifierMisconfigured"
    assert source.current() is None


def test_settings_refuse_verification_without_keys_and_passwords_in_urls() -> None:
    with pytest.raises(ValueError, match="allowed_signers_file"):
        SourceSettings(repo="/x", site="demo", verify="ssh")
    with pytest.raises(ValueError, match="contains a password"):
        SourceSettings(repo="https://bob:hunter2@git.example.com/x.git", site="demo")
    with pytest.raises(ValueError, match="site id"):
        SourceSettings(repo="/x", site="../etc/passwd")
    with pytest.raises(ValueError, match="not both"):
        SourceSettings(repo="/x", site="demo", branch="main", tag="v1")
    s = SourceSettings(repo="https://bob@git.example.com/x.git", site="demo")
    assert "bob" not in s.redacted_repo()


def test_an_ssh_key_file_is_used_through_git_ssh_command(tmp_path: Path) -> None:
    from reconciler.source.mirror import GitMirror

    key = tmp_path / "deploy key"
    settings = SourceSettings(
        repo="git@example.com:org/sites.git", site="demo", ssh_key_file=key, state_dir=tmp_path
    )
    env = GitMirror(settings, settings.paths).env()
    assert env["GIT_SSH_COMMAND"].startswith(f"ssh -i '{key}' -o IdentitiesOnly=yes")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
