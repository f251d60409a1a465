"""Signature verification: a commit is used only if signed by an allowed key.

``git verify-commit`` does the checking, with an SSH allowed-signers file
(``gpg.ssh.allowedSignersFile``) or a private GNUPGHOME holding only the allowed public
keys, so a signature by any other key fails.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import git

from reconciler.source.paths import StatePaths
from reconciler.source.settings import SourceSettings


@dataclass(frozen=True)
class VerifyResult:
    """``reason`` is the Verified condition's reason (Signed, NotRequired, Unsigned, ...)."""

    ok: bool
    reason: str
    message: str


def _is_signed(repo: git.Repo, sha: str) -> bool:
    raw = str(repo.git.cat_file("commit", sha))
    header = raw.split("\n\n", 1)[0]
    return any(line.startswith(("gpgsig ", "gpgsig-sha256 ")) for line in header.splitlines())


def _gnupg_home(settings: SourceSettings, paths: StatePaths) -> str:
    """A GNUPGHOME with exactly the allowed keys, rebuilt from the keyring file."""
    home = paths.gnupg_dir
    if home.exists():
        for child in home.iterdir():
            if child.is_file():
                child.unlink()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    assert settings.gpg_keyring_file is not None
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--import", str(settings.gpg_keyring_file)],
        env={**os.environ, "GNUPGHOME": str(home)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(home)


def verify_commit(
    repo: git.Repo, sha: str, settings: SourceSettings, paths: StatePaths
) -> VerifyResult:
    """Check ``sha``'s signature against the allowed keys in the settings."""
    short = sha[:12]
    if settings.verify == "none":
        return VerifyResult(True, "NotRequired", "signature verification is off")
    keys = settings.allowed_signers_file if settings.verify == "ssh" else settings.gpg_keyring_file
    assert keys is not None
    if not keys.is_file():
        return VerifyResult(
            False,
            "VerifierMisconfigured",
            f"the allowed keys file {keys} does not exist; fix the agent's settings",
        )
    if not _is_signed(repo, sha):
        return VerifyResult(
            False,
            "Unsigned",
            f"commit {short} is not signed; verify: {settings.verify} requires a signature "
            f"by a key in {keys}",
        )
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    args = ["git"]
    if settings.verify == "ssh":
        args += ["-c", f"gpg.ssh.allowedSignersFile={keys}"]
    else:
        try:
            env["GNUPGHOME"] = _gnupg_home(settings, paths)
        except (OSError, subprocess.SubprocessError) as exc:
            return VerifyResult(
                False, "VerifierMisconfigured", f"cannot import the allowed keys {keys}: {exc}"
            )
    args += ["verify-commit", sha]
    status, _out, err = repo.git.execute(
        args, with_extended_output=True, with_exceptions=False, env=env
    )
    if status == 0:
        return VerifyResult(True, "Signed", f"commit {short} is signed by an allowed key")
    detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return VerifyResult(
        False,
        "BadSignature",
        f"commit {short} is not signed by an allowed key in {keys}: {detail[-400:]}",
    )
