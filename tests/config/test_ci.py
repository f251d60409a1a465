"""ci/flux-validate.yml installs flux only from a pinned git revision of its repository,
never by a bare package name from the index (anyone could publish one there, and it would
run with the job's write token). Its install step runs in real bash, with `python` and
`flux` replaced by scripts that record how they were called."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "ci" / "flux-validate.yml"
PINNED = "flux-reconciler @ git+${FLUX_GIT_URL}@${FLUX_REF}"
SHA = "0123456789abcdef0123456789abcdef01234567"


def _workflow() -> dict[str, Any]:
    doc: dict[str, Any] = YAML(typ="safe").load(WORKFLOW)
    return doc


def _install_step() -> dict[str, Any]:
    steps = _workflow()["jobs"]["validate"]["steps"]
    (step,) = [s for s in steps if "pip install" in s.get("run", "")]
    return dict(step)


def test_flux_comes_from_repository_variables_without_defaults() -> None:
    env = _workflow()["env"]
    assert env["FLUX_GIT_URL"] == "${{ vars.FLUX_GIT_URL }}"
    assert env["FLUX_REF"] == "${{ vars.FLUX_REF }}"
    assert "FLUX_PACKAGE" not in env


def test_every_pip_install_is_pip_itself_or_the_pinned_git_revision() -> None:
    scripts = [s.get("run", "") for s in _workflow()["jobs"]["validate"]["steps"]]
    installs = [
        shlex.split(line.split("pip install", 1)[1])
        for script in scripts
        for line in script.splitlines()
        if "pip install" in line
    ]
    targets = [[a for a in args if not a.startswith("-")] for args in installs]
    assert all(t in (["pip"], [PINNED]) for t in targets), targets
    assert [PINNED] in targets


def _run_install(tmp_path: Path, **variables: str) -> tuple[int, str, list[str]]:
    """The step's script in bash with only stub `python` and `flux` on PATH."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "calls.txt"
    for name in ("python", "flux"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        stub.chmod(0o755)
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, "-c", _install_step()["run"]],
        env={"PATH": str(stubs), **variables},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    made = calls.read_text().splitlines() if calls.exists() else []
    return result.returncode, result.stdout + result.stderr, made


def test_install_step_fails_clearly_until_both_variables_are_set(tmp_path: Path) -> None:
    for variables in (
        {},
        {"FLUX_GIT_URL": "https://github.com/example/flux"},
        {"FLUX_REF": SHA},
        {"FLUX_GIT_URL": "", "FLUX_REF": ""},
    ):
        rc, out, calls = _run_install(tmp_path, **variables)
        assert rc == 1, (variables, out)
        assert "::error::set the repository variables FLUX_GIT_URL" in out and "FLUX_REF" in out
        assert calls == [], "nothing is installed without a pinned revision"


def test_install_step_refuses_a_url_that_is_not_https(tmp_path: Path) -> None:
    rc, out, calls = _run_install(
        tmp_path, FLUX_GIT_URL="git@github.com:example/flux.git", FLUX_REF=SHA
    )
    assert rc == 1 and "FLUX_GIT_URL must be an https URL" in out
    assert calls == []


def test_install_step_installs_the_pinned_commit(tmp_path: Path) -> None:
    url = "https://github.com/example/flux"
    rc, out, calls = _run_install(tmp_path, FLUX_GIT_URL=url, FLUX_REF=SHA)
    assert rc == 0, out
    assert "::warning::" not in out
    assert calls == [
        "python -m pip install --upgrade pip",
        f"python -m pip install flux-reconciler @ git+{url}@{SHA}",
        "flux --version",
    ]


def test_install_step_warns_that_a_tag_can_move(tmp_path: Path) -> None:
    rc, out, calls = _run_install(
        tmp_path, FLUX_GIT_URL="https://github.com/example/flux", FLUX_REF="v0.1.0"
    )
    assert rc == 0, out
    assert "::warning::FLUX_REF v0.1.0 is not a full commit SHA" in out
    assert calls[1].endswith("@v0.1.0")
