"""Signed commits: SSH signing keys made with ssh-keygen, checked by git verify-commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.source.controller import GitSource
from reconciler.source.settings import SourceSettings
from reconciler.status.model import ConditionType as C
from tests.source.conftest import (
    DEMO_TEXT,
    GIT_ENV,
    SourceFactory,
    Upstream,
    allowed_signers,
    demo_variant,
    git,
    keypair,
    make_settings,
    promote,
)

if shutil.which("ssh-keygen") is None:  # pragma: no cover - reported, not hidden
    pytest.fail("ssh-keygen is missing: install openssh-client to test signed commits")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(allowed key, stranger's key, allowed-signers file naming only the first)."""
    folder = tmp_path / "keys"
    folder.mkdir()
    allowed = keypair(folder, "release-manager")
    stranger = keypair(folder, "stranger")
    return allowed, stranger, allowed_signers(folder, allowed)


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


def gpg_key(home: Path, uid: str) -> str:
    """Make a passphrase-less signing key in ``home``; return its fingerprint."""
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
         "--quick-gen-key", uid, "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))


def gpg_commit(upstream: Upstream, home: Path, fpr: str, text: str) -> str:
    (upstream.path / "sites").mkdir(exist_ok=True)
    (upstream.path / "sites" / "demo.yaml").write_text(text)
    env = {**GIT_ENV, "GNUPGHOME": str(home)}
    subprocess.run(["git", "add", "-A"], cwd=upstream.path, env={**os.environ, **env}, check=True)
    subprocess.run(
        ["git", "-c", f"user.signingkey={fpr}", "commit", "-q", "-S", "-m", "gpg"],
        cwd=upstream.path, env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip
    return git(upstream.path, "rev-parse", "HEAD")


async def test_gpg_signatures_by_the_keyring_only(
    upstream: Upstream, make_source: SourceFactory, tmp_path: Path
) -> None:
    if shutil.which("gpg") is None:  # pragma: no cover
        pytest.fail("gpg is missing: install gnupg to test GPG-signed commits")
    homes = [tmp_path / "gpg-release", tmp_path / "gpg-stranger"]
    try:
        release = gpg_key(homes[0], "Release <release@flux.invalid>")
        stranger = gpg_key(homes[1], "Stranger <x@flux.invalid>")
        keyring = tmp_path / "allowed.asc"
        keyring.write_bytes(
            subprocess.run(
                ["gpg", "--batch", "--armor", "--export", release],
                env={**os.environ, "GNUPGHOME": str(homes[0])},
                check=True,
                capture_output=True,
            ).stdout
        )
        good = gpg_commit(upstream, homes[0], release, DEMO_TEXT)
        source = make_source(verify="gpg", gpg_keyring_file=keyring)
        await source.sync_once()
        verified = source.status().condition(C.VERIFIED)
        assert (verified.status, verified.reason) == ("True", "Signed"), verified.message
        current = source.current()
        assert current is not None and current.sha == good

        gpg_commit(upstream, homes[1], stranger, demo_variant(43))
        await source.sync_once()
        assert source.status().condition(C.VERIFIED).reason == "BadSignature"
        current = source.current()
        assert current is not None and current.sha == good
    finally:
        for home in [*homes, tmp_path / "state" / "gnupg"]:
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env={**os.environ, "GNUPGHOME": str(home)},
                check=False, capture_output=True,
            )  # fmt: skip


# --------------------------------------------------------------------------- at restart


async def test_a_restart_with_verification_does_not_run_an_unsigned_last_known_good(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    state_dir: Path,
    keys: tuple[Path, Path, Path],
) -> None:
    allowed, _stranger, signers = keys
    # promoted while verification was off (or by an older agent): unsigned, on disk
    unsigned = upstream.commit(DEMO_TEXT, "not signed")
    before = make_source()
    await before.sync_once()
    promote(before, clock)
    assert (state_dir / "last-known-good.json").exists()

    booted = GitSource(
        make_settings(upstream, state_dir, verify="ssh", allowed_signers_file=signers),
        clock=clock,
    )
    assert booted.current() is None  # not run: the battery is not commanded
    verified = booted.status().condition(C.VERIFIED)
    assert (verified.status, verified.reason) == ("False", "Unsigned")
    assert "last-known-good" in verified.message and unsigned[:12] in verified.message
    applied = booted.status().condition(C.APPLIED)
    assert (applied.status, applied.reason) == ("False", "LastKnownGoodUnverified")
    ready = booted.status().condition(C.READY)
    assert (ready.status, ready.reason) == ("False", "NoRevision")
    assert booted.status().snapshot().revisions.last_known_good is None

    # the same unsigned head is refused when fetched too; a signed commit is the way back
    await booted.sync_once()
    assert booted.current() is None
    assert booted.status().condition(C.VERIFIED).reason == "Unsigned"
    signed = upstream.commit(demo_variant(44), "signed", signing_key=allowed)
    await booted.sync_once()
    current = booted.current()
    assert current is not None and current.sha == signed
    assert booted.status().condition(C.VERIFIED).reason == "Signed"


async def test_a_restart_with_verification_runs_a_signed_last_known_good_at_once(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    state_dir: Path,
    keys: tuple[Path, Path, Path],
) -> None:
    allowed, _stranger, signers = keys
    signed = upstream.commit(DEMO_TEXT, "signed", signing_key=allowed)
    first = make_source(verify="ssh", allowed_signers_file=signers)
    await first.sync_once()
    promote(first, clock)
    shutil.rmtree(upstream.path)  # no network at boot

    booted = make_source(verify="ssh", allowed_signers_file=signers)
    current = booted.current()
    assert current is not None and (current.sha, current.source) == (signed, "lkg")
    verified = booted.status().condition(C.VERIFIED)
    assert (verified.status, verified.reason) == ("True", "Signed")
    assert "last-known-good" in verified.message

    # a persisted file edited after it was stored no longer matches the signed commit
    lkg_file = state_dir / "last-known-good.json"
    stored = json.loads(lkg_file.read_text())
    stored["resolved"]["site"]["limits"]["site_import_kw"] = 9999
    lkg_file.write_text(json.dumps(stored))
    tampered = make_source(verify="ssh", allowed_signers_file=signers)
    assert tampered.current() is None
    verified = tampered.status().condition(C.VERIFIED)
    assert (verified.status, verified.reason) == ("False", "ContentMismatch")
    assert str(lkg_file) in verified.message


async def test_the_last_known_good_commit_is_kept_in_the_mirror_after_a_force_push(
    upstream: Upstream,
    make_source: SourceFactory,
    clock: ManualClock,
    state_dir: Path,
    keys: tuple[Path, Path, Path],
) -> None:
    """The signature of the persisted last-known-good is checked in the mirror at every
    start, so git's garbage collection must never drop it, wherever the branch went."""
    allowed, _stranger, signers = keys
    upstream.commit(DEMO_TEXT, "base", signing_key=allowed)
    good = upstream.commit(demo_variant(45), "good", signing_key=allowed)
    source = make_source(verify="ssh", allowed_signers_file=signers, allow_rollback=True)
    await source.sync_once()
    promote(source, clock)
    git(upstream.path, "reset", "-q", "--hard", "HEAD~1")
    upstream.commit(demo_variant(46), "elsewhere", signing_key=allowed)
    await source.sync_once()
    mirror = state_dir / "repo.git"
    git(mirror, "reflog", "expire", "--expire=now", "--all")
    git(mirror, "gc", "-q", "--prune=now")
    assert git(mirror, "cat-file", "-t", good) == "commit"

    booted = make_source(verify="ssh", allowed_signers_file=signers)
    current = booted.current()
    assert current is not None and current.sha == good
