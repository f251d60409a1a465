"""Errors of the telemetry side that a user can act on (the CLI prints them, exit code 2)."""

from __future__ import annotations


class TelemetryError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do."""


class DatabaseUnreachable(TelemetryError):
    """The database URL does not lead to a database that accepts us."""


class SchemaTooNew(TelemetryError):
    """The database was migrated by a newer flux than this one."""


class SchemaMissing(TelemetryError):
    """The database has no flux schema yet (or an older one than needed)."""
