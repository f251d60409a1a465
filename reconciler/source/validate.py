"""Validation at a commit, with exactly the code ``flux validate`` runs in CI.

The site file's bytes at the commit are written to a temporary folder under the same
relative path (``sites/wlce.yaml``), so the validator's messages read as they do in CI:
``sites/wlce.yaml:34:7: schedule[2].params...``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.config.loader import Problem, check_site_file
from reconciler.config.model import Site
from reconciler.config.resolve import resolve_profile

Validator = Callable[[Path], tuple[Site | None, list[Problem]]]
"""Validate the site file at a path: (the site or None, every problem found)."""


def flux_validate(path: Path) -> tuple[Site | None, list[Problem]]:
    """What ``flux validate`` runs on one file: every error and warning, and the site."""
    site, problems = check_site_file(path)
    return site, list(problems)


@dataclass(frozen=True)
class Validation:
    """The outcome of validating one site file."""

    site: Site | None
    errors: list[Problem]
    warnings: list[Problem]

    @property
    def ok(self) -> bool:
        return self.site is not None and not self.errors

    def message(self) -> str:
        return "\n".join(str(p) for p in self.errors)


def _relabel(problem: Problem, real: Path, shown: str) -> Problem:
    if problem.file in (str(real), str(real.resolve())):
        return replace(problem, file=shown)
    return problem


def validate_text(data: bytes, rel_path: str, validator: Validator = flux_validate) -> Validation:
    """Validate a site file's bytes as if it were at ``rel_path`` in the repository."""
    with tempfile.TemporaryDirectory(prefix="flux-validate-") as tmp:
        real = Path(tmp) / rel_path
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_bytes(data)
        try:
            site, problems = validator(real)
        except Exception as exc:  # a validator bug must refuse the commit, not stop control
            problem = Problem(rel_path, 1, 1, "", f"the validator failed: {exc!r}")
            return Validation(None, [problem], [])
        problems = [_relabel(p, real, rel_path) for p in problems]
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    if site is None and not errors:
        errors = [Problem(rel_path, 1, 1, "", "the validator returned no site and no error")]
    return Validation(site if not errors else None, errors, warnings)


def resolved_state(site: Site) -> dict[str, Any]:
    """The desired state as JSON: the site, and every profile its devices use, resolved.

    Raises KeyError or ValueError when a profile cannot be resolved.
    """
    names = {site.devices.battery.profile, *(m.profile for m in site.devices.meters.values())}
    return {
        "site": site.model_dump(mode="json"),
        "profiles": {n: resolve_profile(site, n).model_dump(mode="json") for n in sorted(names)},
    }
