-- Nothing to change on TimescaleDB: its continuous aggregates refresh themselves (0002),
-- and flux.refresh_rollups() there is a no-op. This file keeps the version numbers of the
-- two branches in step.
SELECT 1;
