"""The `flux` command line. Thin: parses, calls, prints.

Subcommands are imported only when used, so `flux validate` in CI does not pay for
pymodbus or psycopg. Each entry maps a command name to ``module:attribute``.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    # desired state
    "validate": "reconciler.config.commands:validate",
    "schema": "reconciler.config.commands:schema",
    "schedule": "reconciler.preview.commands:schedule",
    "pr-comment": "reconciler.preview.comment:pr_comment",
    "backtest": "reconciler.backtest.commands:backtest",
    "plan": "reconciler.planning.commands:plan",
    "db": "reconciler.telemetry.commands:db",
    # devices and the simulator
    "sim": "reconciler.sim.commands:sim",
    "devices": "reconciler.devices.commands:devices",
    # the agent
    "agent": "reconciler.agent.commands:agent",
    "demo": "reconciler.agent.demo:demo",
    "diff": "reconciler.diff.commands:diff",
    "report": "reconciler.report.commands:report",
    "status": "reconciler.diff.commands:status",
    "markets": "reconciler.markets.commands:markets",
}


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules, loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        if command.short_help is None and command.help:
            # click cuts a summary at 45 characters with "..."; the first sentence is
            # short enough, and is wrapped to the terminal instead.
            command.short_help = first_sentence(command.help)
        return command


def first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flux-reconciler", prog_name="flux")
def cli() -> None:
    """Flux: run community batteries from desired state in git."""


def main() -> None:
    cli()
