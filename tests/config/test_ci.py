"""ci/flux-validate.yml installs flux only from a pinned git revision of its repository,
never by a bare package name from the index (anyone could publish one there, and it would
run with the job's write token). Its install step runs in real bash, with `python` and
`flux` replaced by scripts that record how they were called."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "ci" / "flux-validate.yml"
PINNED = "flux-reconciler[plot] @ git+${FLUX_GIT_URL}@${FLUX_REF}"
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
        f"python -m pip install flux-reconciler[plot] @ git+{url}@{SHA}",
        "flux --version",
    ]


def test_install_step_warns_that_a_tag_can_move(tmp_path: Path) -> None:
    rc, out, calls = _run_install(
        tmp_path, FLUX_GIT_URL="https://github.com/example/flux", FLUX_REF="v0.1.0"
    )
    assert rc == 0, out
    assert "::warning::FLUX_REF v0.1.0 is not a full commit SHA" in out
    assert calls[1].endswith("@v0.1.0")


# --------------------------------------------------------------------------- the comment


def _post_step() -> dict[str, Any]:
    steps = _workflow()["jobs"]["validate"]["steps"]
    (step,) = [s for s in steps if "gh pr comment" in s.get("run", "")]
    return dict(step)


def _run_post(tmp_path: Path, comments: list[dict[str, Any]]) -> list[str]:
    """The post step in bash, `gh` a stub answering the comment list with real jq."""
    import json

    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "gh-calls.txt"
    listing = tmp_path / "comments.json"
    listing.write_text(json.dumps(comments))
    gh = stubs / "gh"
    gh.write_text(
        "#!/bin/bash\n"
        f'echo "gh $*" >> "{calls}"\n'
        'if [ "$1" = api ] && [ "$2" != -X ]; then\n'
        "  while [ $# -gt 0 ]; do\n"
        f'    if [ "$1" = --jq ]; then jq -r "$2" < "{listing}"; exit 0; fi; shift\n'
        "  done\n"
        "fi\n"
    )
    gh.chmod(0o755)
    (tmp_path / "preview.md").write_text("<!-- flux-schedule-preview -->\nhello\n")
    bash = shutil.which("bash")
    assert bash is not None and shutil.which("jq") is not None
    result = subprocess.run(
        [bash, "-c", _post_step()["run"]],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "PR": "7", "GITHUB_REPOSITORY": "o/r"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return calls.read_text().splitlines()


def test_the_comment_edits_its_own_marked_comment_not_the_last_one(tmp_path: Path) -> None:
    comments = [
        {"id": 11, "body": "<!-- flux-schedule-preview -->\nold preview"},
        {"id": 12, "body": "a human's reply"},
        {"id": 13, "body": "<!-- another-bot -->\nlint results"},
    ]
    calls = _run_post(tmp_path, comments)
    assert calls[-1] == "gh api -X PATCH repos/o/r/issues/comments/11 -F body=@preview.md"
    assert not any("pr comment" in c for c in calls)


def test_without_its_comment_a_new_one_is_posted(tmp_path: Path) -> None:
    calls = _run_post(tmp_path, [{"id": 13, "body": "<!-- another-bot -->\nlint"}])
    assert calls[-1] == "gh pr comment 7 --body-file preview.md"


def test_seven_large_sites_fit_in_one_comment() -> None:
    from reconciler.preview.comment import LIMIT, MARKER, assemble

    table = "| local start | local end |\n|---|---|\n" + "| 2024-01-15 17:00 | 19:00 |\n" * 600
    sections = [
        (
            f"sites/s{i}.yaml",
            f"#### Schedule\n\n{table}\n\nOver 2024-01-15 site {i} would.\n\n{table}",
        )
        for i in range(7)
    ]
    assert sum(len(b) for _, b in sections) > 65_536
    text = assemble("### Flux schedule preview", sections)
    assert len(text) <= LIMIT < 65_536
    assert text.startswith(MARKER + "\n")
    for i in range(7):
        assert f"<code>sites/s{i}.yaml</code>" in text
        assert f"Over 2024-01-15 site {i} would." in text
    assert "job summary has all of it" in text
    # One small site: whole, and open.
    small = assemble("### h", [("sites/a.yaml", "Over x.\n\n| a |")])
    assert "<details open>" in small and "| a |" in small and "cut" not in small


def test_many_sites_beyond_the_limit_are_named(tmp_path: Path) -> None:
    from reconciler.preview.comment import assemble

    sections = [(f"sites/s{i}.yaml", "Over " + "x" * 5000 + ".") for i in range(40)]
    text = assemble("### h", sections)
    assert len(text) <= 65_000
    assert "more changed site(s)" in text and "`sites/s39.yaml`" in text


# --------------------------------------------------------------------------- the preview


def _preview_step() -> dict[str, Any]:
    steps = _workflow()["jobs"]["validate"]["steps"]
    (step,) = [s for s in steps if s.get("id") == "preview"]
    return dict(step)


@pytest.mark.slow
def test_the_preview_step_backtests_a_changed_site_and_keeps_its_plot(tmp_path: Path) -> None:
    # A config repository in a real git: the target branch, and a pull request that changes
    # the demo site's red-band target. The step runs in bash with the installed flux.
    repo = tmp_path / "config"
    (repo / "sites").mkdir(parents=True)
    demo = (ROOT / "sites" / "demo.yaml").read_text(encoding="utf-8")
    (repo / "sites" / "demo.yaml").write_text(demo, encoding="utf-8")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo, check=True, capture_output=True,
        )  # fmt: skip

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "base")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    git("checkout", "-qb", "change")
    changed = demo.replace("      target_soe: 5%", "      target_soe: 20%", 1)
    assert changed != demo
    (repo / "sites" / "demo.yaml").write_text(changed, encoding="utf-8")
    git("commit", "-qam", "keep 20% after the red band")

    temp, output, summary = tmp_path / "runner", tmp_path / "output", tmp_path / "summary"
    temp.mkdir()
    flux_bin = Path(sys.executable).parent
    env = {
        "PATH": f"{flux_bin}:/usr/bin:/bin",
        "BASE_REF": "main",
        "RUNNER_TEMP": str(temp),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_SHA": SHA,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/config",
        "GITHUB_RUN_ID": "42",
        "PREVIEW_DAYS": "1",
        "BACKTEST_FROM": "2024-01-15",
        "BACKTEST_DAYS": "1",
    }
    bash = shutil.which("bash")
    assert bash is not None and (flux_bin / "flux").exists()
    done = subprocess.run(
        [bash, "-c", _preview_step()["run"]],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed=true" in output.read_text()
    preview = (repo / "preview.md").read_text(encoding="utf-8")
    assert "Captured of the perfect-foresight optimum" in preview
    assert "backtest-plots artifact of [this run](https://github.com/o/config/actions/runs/42)" in (
        preview
    )
    plot = temp / "plots" / "1-demo.png"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # The artifact step keeps that folder.
    (upload,) = [
        s for s in _workflow()["jobs"]["validate"]["steps"]
        if str(s.get("uses", "")).startswith("actions/upload-artifact")
    ]  # fmt: skip
    assert upload["with"]["path"] == "${{ runner.temp }}/plots/"
