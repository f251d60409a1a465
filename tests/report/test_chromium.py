"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, which
scripts/test.sh installs where missing) loads it from a file, every chart decodes, nothing
errs, and a screenshot is taken."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from tests.report.conftest import DEMO

# Put first in <head>: records every error (scripts and resources, which do not bubble),
# and after load writes what it saw into the title, which --dump-dom prints.
PROBE = """<script>
const probeErrors = [];
addEventListener("error",
                 e => probeErrors.push(String(e.message || e.target.id || e.target.src)), true);
addEventListener("load", () => {
  const images = [...document.images].map(i => ({id: i.id, ok: i.complete && i.naturalWidth > 0,
                                                 width: i.naturalWidth}));
  document.title = "PROBE" + JSON.stringify({images, errors: probeErrors});
});
</script>"""


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, (
        "Debian's chromium is needed (scripts/test.sh installs it: apt-get install chromium)"
    )
    # HOME and the profile in the tmp folder: the browser writes nothing outside it.
    env = {**os.environ, "HOME": str(tmp)}
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_the_html_report_opens_in_chromium(reader_url: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli,
        ["report", str(DEMO), "--from", "2024-01-15", "--to", "2024-01-16",
         "--database-url", reader_url, "--out", str(page)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")

    dumped = chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r"<title>PROBE(.*?)</title>", dumped.stdout, re.S)
    assert found, dumped.stdout[:2000]
    seen = json.loads(found.group(1).replace("&quot;", '"'))
    assert seen["errors"] == []
    ids = [i["id"] for i in seen["images"]]
    assert ids == ["chart-energy", "chart-money", "chart-peaks", "chart-soe", "chart-patterns",
                   "chart-average-day"]  # fmt: skip
    assert all(i["ok"] and i["width"] > 300 for i in seen["images"]), seen["images"]

    shot = tmp_path / "shot.png"
    shown = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1200, 2400)
