"""The report as PDF: the HTML report printed by headless Chromium, so the PDF holds the
same content (charts, tables, notes) as the HTML file.

Chromium is found as ``$FLUX_CHROMIUM`` or ``chromium`` / ``chromium-browser`` /
``google-chrome`` on PATH. It runs with its profile and HOME in a temporary folder, so it
writes nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

ENV_CHROMIUM = "FLUX_CHROMIUM"
_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Printing a long fleet report takes a while; a hung browser must not hang the command.
TIMEOUT_S = 600


class PdfUnavailable(click.ClickException):
    """No Chromium to print with, or it failed (exit 1, one line)."""


def chromium() -> str:
    """The Chromium executable, or :class:`PdfUnavailable` saying how to install one."""
    given = os.environ.get(ENV_CHROMIUM)
    if given:
        if shutil.which(given) is None:
            raise PdfUnavailable(f"${ENV_CHROMIUM} is {given!r}, which is not an executable")
        return given
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfUnavailable(
        "--output pdf prints the HTML report with headless Chromium, and none was found: "
        f"install it (Debian: apt-get install chromium) or set ${ENV_CHROMIUM} to its path "
        "(or use --output html)"
    )


def write_pdf(page: str, out: Path) -> None:
    """Print the HTML ``page`` to the PDF file ``out`` (A4, no header or footer)."""
    exe = chromium()
    with tempfile.TemporaryDirectory(prefix="flux-pdf-") as tmp:
        folder = Path(tmp)
        source = folder / "report.html"
        source.write_text(page, encoding="utf-8")
        target = folder / "report.pdf"
        try:
            done = subprocess.run(
                [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 f"--user-data-dir={folder / 'profile'}", "--no-pdf-header-footer",
                 f"--print-to-pdf={target}", source.as_uri()],
                capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                env={**os.environ, "HOME": str(folder)},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PdfUnavailable(f"Chromium did not print the PDF within {TIMEOUT_S} s") from None
        if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PdfUnavailable(
                f"Chromium ({exe}) did not print the PDF (exit {done.returncode}): {last}"
            )
        shutil.copyfile(target, out)
