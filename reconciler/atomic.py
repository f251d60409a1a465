"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def _create_temp(folder: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new file next to the target, opened for writing; the kernel applies the umask."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {folder / name}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, os.replace.

    The folder is fsynced too, so the rename itself survives a power cut (the agent runs on
    a controller that may lose power at any moment).

    Access: a file that is replaced keeps its mode and owner. A new file gets read/write
    for the classes of user the folder lets in, less the umask: a 0700 state folder gets
    0600 files, the unit's 0750 folder with UMask=0027 gets 0640, a 0755 folder with umask
    022 gets 0644. A new file is given the folder's owner and group, so that what root
    writes into the agent's folder (``flux agent suspend``) stays readable by the agent;
    only root can give a file away, and anyone else writes into folders of their own.
    """
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        previous: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        previous = None
    where = previous or os.stat(folder)
    owner = (where.st_uid, where.st_gid)
    fd, tmp = _create_temp(folder, path.name, 0o666 & where.st_mode if previous is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if previous is not None:
                os.fchmod(fh.fileno(), previous.st_mode & 0o777)
            st = os.fstat(fh.fileno())
            if (st.st_uid, st.st_gid) != owner:
                with contextlib.suppress(PermissionError):
                    os.fchown(fh.fileno(), *owner)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    except OSError:  # some filesystems refuse fsync on a directory; the data is still safe
        pass
    finally:
        os.close(dir_fd)
