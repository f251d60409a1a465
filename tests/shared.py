"""Expensive fixtures made once a test run for all the xdist workers: the first worker that
asks makes the value, under a lock in the run's temporary folder; the others wait for it
and read the same one. Only for values the tests read and never change."""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def run_folder(basetemp: Path) -> Path:
    """The temporary folder of the whole run from a process's ``basetemp``: an xdist
    worker's is a sub-folder of the controller's."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


@contextmanager
def run_lock(run: Path, folder: str) -> Iterator[Path]:
    """``run``/``folder``, made if needed, held exclusively by this process meanwhile."""
    path = run / folder
    path.mkdir(exist_ok=True)
    with (path / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


def once_a_run(run: Path, key: str, make: Callable[[], T]) -> T:
    """``make()`` once a run (``run``: :func:`run_folder`), pickled for the other workers."""
    with run_lock(run, "shared-values") as folder:
        done = folder / f"{key}.pickle"
        if done.exists():
            value: T = pickle.loads(done.read_bytes())
            return value
        value = make()
        done.write_bytes(pickle.dumps(value))
        return value
