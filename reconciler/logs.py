"""Structured log lines: one JSON object per line, for journald and log shippers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from reconciler.redact import redact


class JsonLineFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "event": ..., **fields}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        # Last line of defence: no password of a URL or connection string in the journal.
        return redact(json.dumps(payload, default=str, separators=(",", ":")))


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (rendered by :class:`JsonLineFormatter`)."""
    logger.log(level, event, extra={"fields": fields})


def configure(level: str = "info", stream: Any = None) -> None:
    """Send every ``flux.*`` logger to ``stream`` (default stderr) as JSON lines; with
    level debug, pymodbus's own frame dumps too."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("flux")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    if level.lower() == "debug":
        modbus = logging.getLogger("pymodbus")
        modbus.handlers[:] = [handler]
        modbus.setLevel(logging.DEBUG)


def quiet_pymodbus() -> None:
    """pymodbus logs every malformed frame as an error with a hex dump. Flux turns those
    into typed errors that name the device and register, so by default the dumps go
    nowhere rather than to stderr through logging's last-resort handler."""
    modbus = logging.getLogger("pymodbus")
    if not modbus.handlers:
        modbus.addHandler(logging.NullHandler())
