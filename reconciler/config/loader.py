"""Loading a site file. (First cut: the desired-state issue makes errors positional.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.config.model import Site


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a site file, with its position (1-based)."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class SiteFileError(Exception):
    """A site file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_site(path: str | Path) -> Site:
    """Load and validate a site file; raises SiteFileError listing every error."""
    path = Path(path)
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError, UnicodeDecodeError) as exc:
        raise SiteFileError([Problem(str(path), 1, 1, "", str(exc))]) from None
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(str(path), 1, 1, ".".join(str(x) for x in e["loc"]), e["msg"])
            for e in exc.errors()
        ]
        raise SiteFileError(problems) from None
