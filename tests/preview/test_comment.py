"""`flux pr-comment` on section files it cannot use: one line naming the file, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("Über 2024-01-15 the site would.\n".encode("latin-1"), "byte 0xdc at offset 0"),
        (b"Over 2024-01-15 \x00\xff\xfe\x80", "byte 0xff at offset 17"),
    ],
)
def test_a_section_that_is_not_utf8_is_refused(tmp_path: Path, content: bytes, where: str) -> None:
    section = tmp_path / "demo.md"
    section.write_bytes(content)
    result = CliRunner().invoke(cli, ["pr-comment", "--section", f"demo={section}"])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, UnicodeDecodeError)
    (line,) = [line for line in result.stderr.splitlines() if "UTF-8" in line]
    assert f"{section} is not UTF-8 text ({where}); give the markdown preview" in line


def test_utf8_sections_make_one_comment(tmp_path: Path) -> None:
    section = tmp_path / "demo.md"
    section.write_text("Over 2024-01-15 the site would save £12.\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["pr-comment", "--section", f"sites/demo.yaml={section}"])
    assert result.exit_code == 0, result.output
    assert "<code>sites/demo.yaml</code>" in result.stdout and "£12" in result.stdout
