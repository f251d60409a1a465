"""The locks that make the running agent the single writer to its battery.

Two exclusive ``fcntl.flock`` locks, each on a file holding its holder's pid; the kernel
drops them when the process dies, so a crashed agent never leaves a stale lock:

- the state-folder lock, ``<state_dir>/agent.lock``: one agent per status file and outbox;
- the battery lock, ``<lock_dir>/battery-<host>-<port>-<unit>.lock`` (``/run/lock/flux`` by
  default): one writer per battery, whatever state folder each agent was given. Shadow
  agents write nothing and take only a state folder of their own.

CLI commands that write to the battery call :func:`refuse_if_agent_running` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path
from types import TracebackType

import click

from reconciler.source.paths import StatePaths

_ATTEMPTS = 5
#: Where battery locks live unless --lock-dir / FLUX_LOCK_DIR says otherwise: tmpfs, so a
#: reboot clears it, and shared by every agent on the controller.
DEFAULT_LOCK_DIR = Path("/run/lock/flux")


class BatteryLockHeld(click.ClickException):
    """Another process (the agent) holds the battery lock. Exit code 3."""

    exit_code = 3

    def __init__(self, pid: int | None, lock_file: Path) -> None:
        who = f"the agent (pid {pid})" if pid else "another process"
        super().__init__(
            f"{who} holds the battery lock ({lock_file}); stop it "
            "(systemctl stop flux-agent) or use --shadow"
        )
        self.pid = pid


class StateFolderInUse(click.ClickException):
    """A shadow agent asked to share a running agent's state folder. Exit code 3."""

    exit_code = 3

    def __init__(self, pid: int | None, state_dir: Path) -> None:
        who = f"the agent (pid {pid})" if pid else "another agent"
        super().__init__(
            f"{who} runs on {state_dir}: a shadow agent there would overwrite its status file "
            f"and share its outbox; give it a folder of its own, e.g. --state-dir "
            f"{state_dir}-shadow"
        )
        self.pid = pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class _FileLock:
    """An exclusive, non-blocking flock on one file that records its holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _take(self, holder: str, attempts: int = 1) -> bool:
        """Lock the file and write ``holder`` into it; False when someone else holds it.
        Raises OSError when the file cannot be opened."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


class BatteryLock(_FileLock):
    """The state-folder lock. Use as a context manager or acquire()/release()."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(StatePaths(state_dir).lock_file)

    def acquire(self) -> None:
        """Take the lock or raise :class:`BatteryLockHeld` naming the holder's pid."""
        # lock_holder() takes a shared lock for an instant: look again shortly before
        # concluding another writer runs
        if not self.held and not self._take(str(os.getpid()), attempts=_ATTEMPTS):
            raise BatteryLockHeld(_read_pid(self.path), self.path)

    def __enter__(self) -> BatteryLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def lock_holder(state_dir: Path) -> int | None:
    """The pid holding the lock (0 if held but the pid is unknown), or None when free."""
    path = StatePaths(state_dir).lock_file
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(path) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_agent_running(state_dir: Path) -> None:
    """Raise :class:`BatteryLockHeld` (a click error, exit 3) while the agent holds the lock."""
    pid = lock_holder(state_dir)
    if pid is not None:
        raise BatteryLockHeld(pid or None, StatePaths(state_dir).lock_file)


class BatteryInUse(click.ClickException):
    """Another agent writes to this battery (same host, port and unit id). Exit code 3."""

    exit_code = 3

    def __init__(self, battery: str, holder: str | None, lock_file: Path) -> None:
        who = holder or "another process"
        super().__init__(
            f"battery {battery} is already driven by {who} (lock {lock_file}); one writer "
            "per battery: stop that agent, or run this one with --shadow"
        )
        self.holder = holder


def battery_identity(host: str, port: int, unit_id: int) -> str:
    """How a battery is named in locks and messages: ``host:port unit N``."""
    return f"{host.lower()}:{port} unit {unit_id}"


class DeviceLock(_FileLock):
    """The battery lock: exclusive on one battery's identity, across state folders."""

    def __init__(self, lock_dir: Path, host: str, port: int, unit_id: int) -> None:
        self.battery = battery_identity(host, port, unit_id)
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", host.lower())
        super().__init__(lock_dir / f"battery-{safe_host}-{port}-{unit_id}.lock")

    def acquire(self, holder: str) -> None:
        """Take the lock, recording ``holder`` (who, in words), or raise BatteryInUse."""
        if self.held:
            return
        try:
            taken = self._take(holder)
        except OSError as exc:
            raise click.ClickException(
                f"cannot take the battery lock {self.path}: {exc.strerror}; give a writable "
                "folder with --lock-dir (FLUX_LOCK_DIR)"
            ) from None
        if not taken:
            raise BatteryInUse(self.battery, self._holder(), self.path)

    def _holder(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
