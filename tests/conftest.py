"""Fixtures shared across areas."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.source.conftest import Upstream, git


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """An empty config repository (branch main) in a temporary folder."""
    path = tmp_path / "config-repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return Upstream(path)
