-- When each reading reached the database, so a report can count late uploads (a Pi that
-- was offline and drained its outbox later) per device.
--
-- received_at is the uploading transaction's time (now()): every INSERT and COPY of the
-- uploader names its columns, so the default fills it. A re-sent row conflicts and is
-- skipped, so a row keeps its first arrival.
--
-- Rows stored before this migration keep NULL (arrival unknown) rather than the
-- migration's time, which would make every old row look late: the column is added
-- without a default (no rewrite of the table), then the default is set for new rows.
-- Both statements are allowed on TimescaleDB hypertables (the reading tables are not
-- compressed: they have row-level security), so one file serves both flavours.

ALTER TABLE flux.bess_readings ADD COLUMN received_at timestamptz;
ALTER TABLE flux.bess_readings ALTER COLUMN received_at SET DEFAULT now();

ALTER TABLE flux.meter_readings ADD COLUMN received_at timestamptz;
ALTER TABLE flux.meter_readings ALTER COLUMN received_at SET DEFAULT now();
