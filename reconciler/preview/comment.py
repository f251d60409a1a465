"""`flux pr-comment`: one pull-request comment from the per-site previews, within GitHub's
size limit, starting with a marker the workflow finds its own comment by.

GitHub refuses a comment over 65,536 characters; a preview with backtests runs to ~9,000
per changed site, so seven sites were refused. Each site is folded (``<details>``, open
only when it is the only one); when the whole would not fit, each site keeps only its
backtest headline and the job summary has the rest; past that, later sites are listed by
name only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

MARKER = "<!-- flux-schedule-preview -->"
#: GitHub's limit is 65,536 characters; a margin for the text added around the sections.
LIMIT = 65_000
_CUT = "_Detail cut to fit GitHub's comment size limit: the job summary has all of it._"


def _folded(name: str, body: str, *, open_: bool) -> str:
    return (
        f"<details{' open' if open_ else ''}><summary><code>{name}</code></summary>\n\n"
        f"{body.strip()}\n\n</details>"
    )


def _headline(body: str) -> str:
    """A section's backtest headline (the paragraph starting "Over "), if it has one."""
    for paragraph in (p.strip() for p in body.split("\n\n")):
        if paragraph.startswith("Over "):
            return paragraph
    return ""


def assemble(header: str, sections: list[tuple[str, str]], limit: int = LIMIT) -> str:
    """The comment: ``MARKER``, ``header`` and each (name, markdown) section, at most
    ``limit`` characters."""
    top = f"{MARKER}\n{header.strip()}\n"
    one = len(sections) == 1
    full = "\n\n".join([top, *(_folded(n, b, open_=one) for n, b in sections)])
    if len(full) <= limit:
        return full + "\n"
    parts = [top, _CUT]
    used = len(top) + len(_CUT) + 4
    left: list[str] = []
    for name, body in sections:
        short = _folded(name, _headline(body) or "(no backtest headline)", open_=False)
        if not left and used + len(short) + 2 <= limit - 200:
            parts.append(short)
            used += len(short) + 2
        else:
            left.append(name)
    if left:
        parts.append(f"{len(left)} more changed site(s): " + ", ".join(f"`{n}`" for n in left))
    text = "\n\n".join(parts) + "\n"
    return text if len(text) <= limit else text[: limit - 2] + "\n"


@click.command("pr-comment")
@click.option("--header", default="", help="Markdown above the sections (after the marker).")
@click.option(
    "--section",
    "sections",
    multiple=True,
    metavar="NAME=FILE",
    help="A changed site's preview: its name and the markdown file (repeatable, in order).",
)
@click.option("--limit", type=click.IntRange(1000), default=LIMIT, show_default=True)
def pr_comment(header: str, sections: tuple[str, ...], limit: int) -> None:
    """Assemble a pull request's preview comment within GitHub's size limit.

    Prints the comment, starting with the marker line the workflow finds its own
    earlier comment by (so it edits that one, not the last comment of the bot).
    """
    parsed: list[tuple[str, str]] = []
    for spec in sections:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise click.BadParameter(f"{spec!r}: write NAME=FILE", param_hint="--section")
        try:
            parsed.append((name, Path(file).read_text(encoding="utf-8")))
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {file}: {exc.strerror or exc}", param_hint="--section"
            ) from None
        except UnicodeDecodeError as exc:
            # GitHub takes the comment as UTF-8; guessing another encoding could garble it.
            raise click.BadParameter(
                f"{file} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start}); give the markdown preview, saved as UTF-8",
                param_hint="--section",
            ) from None
    sys.stdout.write(assemble(header, parsed, limit))
