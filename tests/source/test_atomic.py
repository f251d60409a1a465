"""State files take their access from the state folder, the umask and the file they replace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.atomic import write_atomic
from reconciler.source.paths import StatePaths
from reconciler.source.store import save_quarantine


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def folder(parent: Path, name: str, mode: int) -> Path:
    path = parent / name
    path.mkdir()
    path.chmod(mode)
    return path


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_private_state_folder_gets_private_files(tmp_path: Path) -> None:
    state = folder(tmp_path, "state", 0o700)
    with umask(0o022):
        write_atomic(state / "status.json", "{}")
        save_quarantine(StatePaths(state).quarantine_file, [])
    assert mode_of(state / "status.json") == 0o600
    assert mode_of(state / "quarantine.json") == 0o600


def test_files_follow_the_folder_and_the_umask(tmp_path: Path) -> None:
    shared = folder(tmp_path, "shared", 0o755)
    group = folder(tmp_path, "group", 0o750)
    with umask(0o022):
        write_atomic(shared / "a.json", "{}")
        write_atomic(group / "a.json", "{}")
    with umask(0o077):
        write_atomic(shared / "b.json", "{}")
    with umask(0o027):  # the unit's UMask
        write_atomic(shared / "c.json", "{}")
    assert mode_of(shared / "a.json") == 0o644
    assert mode_of(group / "a.json") == 0o640
    assert mode_of(shared / "b.json") == 0o600
    assert mode_of(shared / "c.json") == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    shared = folder(tmp_path, "shared", 0o755)
    path = shared / "status.json"
    path.write_text("{}")
    path.chmod(0o640)  # an operator narrowed it
    with umask(0o022):
        write_atomic(path, '{"n": 1}')
    assert mode_of(path) == 0o640 and path.read_text() == '{"n": 1}'
    assert sorted(p.name for p in shared.iterdir()) == ["status.json"]


def test_a_file_written_into_another_users_folder_belongs_to_that_user(tmp_path: Path) -> None:
    """`flux agent suspend` run as root writes into the agent's folder: the agent must be
    able to read what root wrote there (only root can give a file away; anyone else
    writes into folders of their own)."""
    state = folder(tmp_path, "state", 0o750)
    if os.geteuid() == 0:
        os.chown(state, 4242, 4343)
    owner = (state.stat().st_uid, state.stat().st_gid)
    with umask(0o022):
        write_atomic(state / "suspend.json", "{}")
    st = (state / "suspend.json").stat()
    assert (st.st_uid, st.st_gid) == owner
    assert mode_of(state / "suspend.json") == 0o640
