"""Validate a fleet of 1,000 site files through the CLI, as CI does; print the figures.

Generates 1,000 distinct site files (variations of the checked-in sites) into a temporary
folder, runs ONE `flux validate DIR` process over them (the CI code path, start-up
included) and prints files per second and total seconds. Goal: 1,000 files in under 5 s.

As a baseline measured in the same run, it also times ruamel.yaml's round-trip loader
(the obvious way to keep line numbers) on a sample of the same files.

    .venv/bin/python bench/validate_fleet.py [--files N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ["wlce", "hmce", "lfce"]


def generate(folder: Path, count: int) -> list[Path]:
    texts = {t: (ROOT / "sites" / f"{t}.yaml").read_text(encoding="utf-8") for t in TEMPLATES}
    paths = []
    for i in range(count):
        name = TEMPLATES[i % len(TEMPLATES)]
        text = texts[name].replace(f"  id: {name}\n", f"  id: site-{i:04d}\n", 1)
        text = text.replace("host: 10.", f"host: 10.{i % 200}.", 1)
        text = text.replace("homes: ", f"homes: {i % 7}", 1)
        path = folder / f"site-{i:04d}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    flux = Path(sys.executable).parent / "flux"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = generate(folder, args.files)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [str(flux), "validate", str(folder)], capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
            print("validation failed: the generated fleet should be valid", file=sys.stderr)
            return 1
        sample = paths[:50]
        rt = YAML(typ="rt")
        t0 = time.perf_counter()
        for p in sample:
            rt.load(p.read_text(encoding="utf-8"))
        rt_per_file = (time.perf_counter() - t0) / len(sample)
    per_file = seconds / args.files
    print(f"files:                      {args.files}")
    print(f"flux validate (one call):   {seconds:.2f} s total, {args.files / seconds:.0f} files/s")
    print(f"per file (incl. start-up):  {per_file * 1000:.2f} ms")
    print(f"CPU time of that process:   {cpu:.2f} s ({args.files / cpu:.0f} files per CPU-second)")
    print(f"machine load (1 min):       {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"baseline ruamel rt load only: {rt_per_file * 1000:.2f} ms/file "
        f"(~{rt_per_file * args.files:.1f} s for the fleet)"
    )
    print(f"speed-up over the baseline: {rt_per_file / per_file:.1f}x")
    print(f"goal (1,000 files < 5 s):   {'met' if seconds * 1000 / args.files < 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
