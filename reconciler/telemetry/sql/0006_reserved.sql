-- Placeholder on the ops branch only: version 6 is the TimescaleDB branch's migration.
-- Delete this file when merging that branch (migrations must be numbered without holes).
SELECT 1;
