"""Structured log lines: one JSON object per line, for journald and log shippers.

Under systemd (``$JOURNAL_STREAM`` names the stream stderr is), each line starts with
its syslog priority, ``<4>`` for a warning, which journald strips and keeps as the
entry's priority: ``journalctl -p warning`` then finds safe stops and refused revisions.
"""

from __future__ import annotations

import json
import logging
import os
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


#: syslog priorities by logging level (sd-daemon(3)).
SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalPrefixFormatter(JsonLineFormatter):
    """JSON lines with the ``<N>`` priority prefix journald reads from a stream."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < 30 else 3)
        return f"<{priority}>{super().format(record)}"


def is_journal_stream(stream: Any) -> bool:
    """True when ``stream`` is the journal connection systemd named in $JOURNAL_STREAM
    (``device:inode``), not, say, a file the output was redirected to."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (rendered by :class:`JsonLineFormatter`)."""
    logger.log(level, event, extra={"fields": fields})


def configure(level: str = "info", stream: Any = None) -> None:
    """Send every ``flux.*`` logger to ``stream`` (default stderr) as JSON lines; with
    level debug, pymodbus's own frame dumps too."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    journal = is_journal_stream(stream)
    handler.setFormatter(JournalPrefixFormatter() if journal else JsonLineFormatter())
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
