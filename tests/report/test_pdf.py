"""`flux report --output pdf`: the HTML report printed by headless Chromium (Debian's
`chromium`, which scripts/test.sh installs where missing), read back with pypdf; and the
one-line error when there is no Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from reconciler.cli import cli
from reconciler.report.pdf import ENV_CHROMIUM
from tests.report.conftest import DEMO

DAY = ("--from", "2024-01-15", "--to", "2024-01-16")


def test_the_pdf_holds_the_html_reports_content(reader_url: str, tmp_path: Path) -> None:
    assert shutil.which("chromium"), "Debian's chromium is needed (apt-get install chromium)"
    out = tmp_path / "report.pdf"
    result = CliRunner().invoke(
        cli, ["report", str(DEMO), *DAY, "--database-url", reader_url, "--output", "pdf",
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    pdf = PdfReader(out)
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Flux report: demo" in text
    assert "Demo microgrid (simulated)" in text  # the site's name, from its file
    for heading in ("Energy (total)", "SoE distribution", "Average day per month",
                    "Data quality", "Elexon"):  # fmt: skip
        assert heading in text, heading
    # Every chart of the HTML, as an image in the PDF.
    assert sum(len(page.images) for page in pdf.pages) == 6


def test_without_chromium_it_says_how_to_install_it(
    reader_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no browser on PATH
    monkeypatch.delenv(ENV_CHROMIUM, raising=False)
    out = tmp_path / "report.pdf"
    args = ["report", str(DEMO), *DAY, "--database-url", reader_url, "--output", "pdf"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "none was found" in line and "apt-get install chromium" in line, line
    assert not out.exists()

    monkeypatch.setenv(ENV_CHROMIUM, str(tmp_path / "no-such-browser"))
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 1 and "not an executable" in result.stderr, result.output

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "give --out FILE.pdf" in result.stderr, result.output
