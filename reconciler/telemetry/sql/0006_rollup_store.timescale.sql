-- TimescaleDB as a rollup store that keeps every uploaded row (issue 15).
--
-- 1. The site check. 0002 checked an agent's site with a BEFORE INSERT row trigger, which
--    cost two thirds of ingest and, on TimescaleDB 2.28.3, made COPY record no
--    continuous-aggregate invalidation (rows older than the last refresh never reached
--    the rollups); and an agent could read every site's readings. Row-level security
--    again, as on plain PostgreSQL: agents read and write only their own sites' rows.
--    TimescaleDB refuses to *create* a continuous aggregate on a table with row security
--    (the aggregate is materialised as its owner, so its rows would escape the policies):
--    the aggregates exist already, and only flux_reader, which reads every site anyway,
--    may select them; agents are granted nothing on them. Columnstore (compression)
--    cannot be enabled on a table with row security at all, so the reading tables are
--    no longer compressed (they were never compressed in practice: see 2.).
-- 2. Background jobs are not relied on: on PostgreSQL 15.20 every job ends Failed
--    (SQLSTATE 24000, upstream) after committing its work, and the failure backoff
--    stretches the schedules. The uploader refreshes the range it uploaded (when its role
--    owns the aggregates), and `flux db refresh` brings everything up to date; the
--    refresh policies stay as a backstop, now over the whole history (start_offset NULL:
--    only invalidated ranges are recomputed, so this is cheap) instead of 30 days.
-- 3. Retention is a setting (flux.settings, `flux db policy --retention`), off by default,
--    applied by `flux db refresh` after the rollups are current and without invalidating
--    them (a dropped chunk is otherwise an invalidation that empties the rollups at the
--    next refresh). The 730-day retention policy dropped a fresh demo's January 2024
--    readings minutes after upload, then their rollups.
-- 4. Real-time aggregation on the 5 m rollups: a reader sees the newest minutes at once
--    (materialised buckets plus the raw rows after the watermark). The 30 m and 1 h
--    rollups stay materialised-only: built on the 5 m aggregate they would union its
--    real-time query again, and they are brought up to date with the 5 m ones.

DROP TRIGGER bess_agent_site ON flux.bess_readings;
DROP TRIGGER meter_agent_site ON flux.meter_readings;
DROP FUNCTION flux.check_agent_site();

SELECT remove_retention_policy('flux.bess_readings', if_exists => true);
SELECT remove_retention_policy('flux.meter_readings', if_exists => true);
SELECT remove_compression_policy('flux.bess_readings', if_exists => true);
SELECT remove_compression_policy('flux.meter_readings', if_exists => true);
SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('flux.bess_readings') c;
SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('flux.meter_readings') c;
ALTER TABLE flux.bess_readings SET (timescaledb.compress = false);
ALTER TABLE flux.meter_readings SET (timescaledb.compress = false);

-- Before row security: TimescaleDB validates the aggregate's query again here.
ALTER MATERIALIZED VIEW flux.bess_5m SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW flux.meter_5m SET (timescaledb.materialized_only = false);

-- The agent_own_site and reader_all policies of 0001 are still defined.
ALTER TABLE flux.bess_readings ENABLE ROW LEVEL SECURITY;
ALTER TABLE flux.meter_readings ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    agg text;
    width interval;
BEGIN
    FOREACH agg IN ARRAY ARRAY['bess_5m', 'meter_5m', 'bess_30m', 'meter_30m', 'bess_1h',
                               'meter_1h'] LOOP
        width := CASE split_part(agg, '_', 2) WHEN '5m' THEN interval '5 minutes'
                 WHEN '30m' THEN interval '30 minutes' ELSE interval '1 hour' END;
        PERFORM remove_continuous_aggregate_policy(format('flux.%I', agg)::regclass,
                                                   if_exists => true);
        PERFORM add_continuous_aggregate_policy(format('flux.%I', agg)::regclass,
            start_offset => NULL, end_offset => width,
            schedule_interval => greatest(width, interval '5 minutes'));
    END LOOP;
END
$$;

-- Settings an administrator changes with `flux db policy` (text values, read by flux).
CREATE TABLE flux.settings (
    name   text PRIMARY KEY,
    value  text NOT NULL
);

-- Stays a no-op on this branch (0002): the
-- uploader now refreshes the aggregates itself with refresh_continuous_aggregate, which
-- cannot run inside a function.
COMMENT ON FUNCTION flux.refresh_rollups() IS
    'TimescaleDB: continuous aggregates are refreshed with refresh_continuous_aggregate '
    '(outside any transaction), by the uploader per uploaded range and by flux db refresh';
