"""The plain ``--site file.yaml`` source: one file, validated once, always in control (no
fetch, no health gate)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from reconciler.clock import Clock, WallClock
from reconciler.config.loader import Problem, SiteFileError
from reconciler.source import report
from reconciler.source.revision import Revision, TickHealth
from reconciler.source.validate import Validator, flux_validate
from reconciler.status.model import AgentStatus


class FileSource:
    """The plain ``--site file.yaml`` mode: one validated file, sha ``file:<sha256[:12]>``.

    Raises :class:`SiteFileError` when the file is invalid, with every problem.
    """

    kind = "file"

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        status_file: Path | None = None,
        validator: Validator = flux_validate,
    ) -> None:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = Problem(str(path), 1, 1, "", f"cannot read the site file: {exc.strerror}")
            raise SiteFileError([problem]) from None
        site, problems = validator(path)
        errors = [p for p in problems if p.severity == "error"]
        if site is None or errors:
            raise SiteFileError(errors or [Problem(str(path), 1, 1, "", "not a valid site file")])
        self.path = path
        sha = "file:" + hashlib.sha256(data).hexdigest()[:12]
        self._revision = Revision(sha, site, "file")
        self._status = AgentStatus(
            clock=clock or WallClock(),
            site=site.site.id,
            source="file",
            source_ref=str(path),
            status_file=status_file,
        )
        report.file_source(self._status, path, sha, problems)
        report.update_ready(self._status, self._revision)

    def current(self) -> Revision:
        return self._revision

    def observe_tick(self, health: TickHealth) -> None:
        report.update_health(self._status, health)
        report.update_ready(self._status, self._revision)
        self._status.flush()

    async def run(self, stop: asyncio.Event) -> None:
        self._status.flush(force=True)
        await stop.wait()

    def status(self) -> AgentStatus:
        return self._status
