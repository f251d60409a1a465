-- Settings an administrator changes with `flux db policy` (text values, read by flux):
-- the same table as on TimescaleDB (0006 there), where the rollup store changed more.
-- Retention on this branch deletes raw readings older than the setting after the rollups
-- are current (`flux db refresh`); the rollup tables are separate and are kept.
CREATE TABLE flux.settings (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
