"""Telemetry: the SQLite outbox, the uploader, and the PostgreSQL schema (its numbered
migrations ship in ``sql/`` inside this package)."""
