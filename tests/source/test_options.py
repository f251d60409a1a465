"""The source's click options, as `flux agent run` will use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from reconciler.clock import ManualClock
from reconciler.source.options import settings_from_options, source_from_options, source_options
from tests.source.conftest import DEMO_TEXT, ROOT, START, Upstream


@click.command()
@click.option("--site", required=True)
@source_options
def run(site: str, **options: Any) -> None:
    settings = settings_from_options(site, options)
    click.echo(settings.model_dump_json())


def test_options_and_environment_build_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        run,
        ["--site", "wlce", "--interval", "30", "--state-dir", str(tmp_path)],
        env={"FLUX_REPO": "/srv/sites.git", "FLUX_HEALTH_GATE_TICKS": "7"},
    )
    assert result.exit_code == 0, result.output
    assert '"repo":"/srv/sites.git"' in result.output
    assert '"health_gate_ticks":7' in result.output and '"interval_s":30.0' in result.output


def test_the_gate_length_defaults_to_the_site_files_and_rollbacks_need_a_flag(
    tmp_path: Path,
) -> None:
    plain = CliRunner().invoke(run, ["--site", "wlce", "--repo", "/x"])
    assert plain.exit_code == 0, plain.output
    assert '"health_gate_ticks":null' in plain.output  # the site file's value applies
    assert '"allow_rollback":false' in plain.output
    allowed = CliRunner().invoke(run, ["--site", "wlce", "--repo", "/x", "--allow-rollback"])
    assert '"allow_rollback":true' in allowed.output
    by_env = CliRunner().invoke(
        run, ["--site", "wlce", "--repo", "/x"], env={"FLUX_ALLOW_ROLLBACK": "1"}
    )
    assert '"allow_rollback":true' in by_env.output


def test_bad_settings_are_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        run, ["--site", "wlce", "--repo", "/x", "--verify", "ssh", "--interval", "0"]
    )
    assert result.exit_code == 2
    assert "--interval: Input should be greater than 0" in result.output
    result = CliRunner().invoke(run, ["--site", "wlce", "--repo", "/x", "--verify", "ssh"])
    assert result.exit_code == 2 and "verify: ssh needs allowed_signers_file" in result.output
    assert "Traceback" not in result.output
    # --http-port's help offers -1 (no endpoint) in git mode as in file mode.
    none = CliRunner().invoke(run, ["--site", "wlce", "--repo", "/x", "--http-port", "-1"])
    assert none.exit_code == 0 and '"http_port":-1' in none.output, none.output
    below = CliRunner().invoke(run, ["--site", "wlce", "--repo", "/x", "--http-port", "-2"])
    assert below.exit_code == 2 and "--http-port: Input should be greater than or equal to -1" in (
        below.output
    )


@click.command()
@click.option("--site", required=True)
@source_options
def which(site: str, **options: Any) -> None:
    source = source_from_options(site, options, clock=ManualClock(START))
    current = source.current()
    click.echo(f"{source.kind} {current.sha if current else None}")


def test_run_options_pick_a_git_or_a_file_source(tmp_path: Path, upstream: Upstream) -> None:
    runner = CliRunner()
    state = ["--state-dir", str(tmp_path / "state")]
    as_file = runner.invoke(which, ["--site", str(ROOT / "sites" / "demo.yaml"), *state])
    assert as_file.exit_code == 0, as_file.output
    assert as_file.output.startswith("file file:")
    assert (tmp_path / "state" / "status.json").exists()

    upstream.commit(DEMO_TEXT, "x")
    as_git = runner.invoke(which, ["--site", "demo", "--repo", str(upstream.path), *state])
    assert as_git.exit_code == 0, as_git.output
    assert as_git.output == "git None\n"  # nothing fetched yet, no last-known-good

    missing = runner.invoke(which, ["--site", str(tmp_path / "nope.yaml"), *state])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_TEXT.replace("  homes: 54\n", "  homes: lots\n"))
    invalid = runner.invoke(which, ["--site", str(bad), *state])
    assert invalid.exit_code == 1
    assert "is not a valid site file" in invalid.output and f"{bad}:" in invalid.output
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    no_state = runner.invoke(
        which, ["--site", "demo", "--repo", str(upstream.path), "--state-dir", str(blocked / "x")]
    )
    assert no_state.exit_code == 1 and "cannot use the state folder" in no_state.output
