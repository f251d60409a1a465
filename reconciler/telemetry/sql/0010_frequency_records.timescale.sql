-- Frequency response's performance records (issue 18), TimescaleDB.
--
-- The same table, columns and rollups as the plain-PostgreSQL branch (see its comments):
-- one row a second while a frequency_response entry is active; the 5 m, 30 m and 1 h
-- rollups (flux.frequency_*) as continuous aggregates, 30 m and 1 h built on 5 m, as the
-- readings' (0002, 0006): real-time aggregation on 5 m only, refresh policies over the
-- whole history as a backstop, and the uploader and `flux db refresh` refreshing the
-- ranges uploaded (reconciler/telemetry/rollups.py knows this source).
--
-- Order matters (0006): TimescaleDB refuses to create a continuous aggregate on a table
-- with row security, so the aggregates come first and row security last; only
-- flux_reader may select the aggregates. No compression: it cannot be enabled on a
-- table with row security.

CREATE TABLE flux.frequency_records (
    time           timestamptz NOT NULL,        -- the whole second (UTC)
    site_id        text NOT NULL,
    device         text NOT NULL,               -- the battery
    frequency_hz   double precision NOT NULL,   -- the grid meter's reading
    expected_kw    double precision,            -- the curve's response; NULL: stale frequency
    delivered_kw   double precision NOT NULL,   -- the battery's measured power
    tolerance_kw   double precision NOT NULL,
    envelope_cut   boolean NOT NULL,            -- the envelope cut the contracted response
    PRIMARY KEY (site_id, device, time)
);

SELECT create_hypertable('flux.frequency_records', 'time', chunk_time_interval => interval '7 days',
                         if_not_exists => true, migrate_data => true);

-- count(*) FILTER is written as sum(CASE ...): the same number, in a form every
-- TimescaleDB 2.x continuous aggregate accepts.
CREATE MATERIALIZED VIEW flux.frequency_5m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '5 minutes', time) AS bucket, site_id, device,
       count(*) AS samples,
       count(expected_kw) AS due_samples,
       sum(CASE WHEN abs(delivered_kw - expected_kw) <= tolerance_kw THEN 1 ELSE 0 END)
           AS within_samples,
       sum(CASE WHEN envelope_cut THEN 1 ELSE 0 END) AS cut_samples,
       avg(abs(delivered_kw - expected_kw)) AS abs_error_avg_kw,
       max(abs(delivered_kw - expected_kw)) AS abs_error_max_kw,
       avg(frequency_hz) AS frequency_avg_hz, min(frequency_hz) AS frequency_min_hz,
       max(frequency_hz) AS frequency_max_hz,
       sum(coalesce(expected_kw, 0)) / 3600 AS expected_kwh,
       sum(delivered_kw) / 3600 AS delivered_kwh
FROM flux.frequency_records
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.frequency_30m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '30 minutes', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(due_samples) AS due_samples,
       sum(within_samples) AS within_samples,
       sum(cut_samples) AS cut_samples,
       sum(abs_error_avg_kw * due_samples) / nullif(sum(due_samples), 0) AS abs_error_avg_kw,
       max(abs_error_max_kw) AS abs_error_max_kw,
       sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
       min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
       sum(expected_kwh) AS expected_kwh,
       sum(delivered_kwh) AS delivered_kwh
FROM flux.frequency_5m
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.frequency_1h WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(due_samples) AS due_samples,
       sum(within_samples) AS within_samples,
       sum(cut_samples) AS cut_samples,
       sum(abs_error_avg_kw * due_samples) / nullif(sum(due_samples), 0) AS abs_error_avg_kw,
       max(abs_error_max_kw) AS abs_error_max_kw,
       sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
       min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
       sum(expected_kwh) AS expected_kwh,
       sum(delivered_kwh) AS delivered_kwh
FROM flux.frequency_5m
GROUP BY 1, 2, 3
WITH NO DATA;

-- Before row security: TimescaleDB validates the aggregate's query again here.
ALTER MATERIALIZED VIEW flux.frequency_5m SET (timescaledb.materialized_only = false);

DO $$
DECLARE
    agg text;
    width interval;
BEGIN
    FOREACH agg IN ARRAY ARRAY['frequency_5m', 'frequency_30m', 'frequency_1h'] LOOP
        width := CASE split_part(agg, '_', 2) WHEN '5m' THEN interval '5 minutes'
                 WHEN '30m' THEN interval '30 minutes' ELSE interval '1 hour' END;
        PERFORM add_continuous_aggregate_policy(format('flux.%I', agg)::regclass,
            start_offset => NULL, end_offset => width,
            schedule_interval => greatest(width, interval '5 minutes'));
    END LOOP;
END
$$;

GRANT SELECT, INSERT ON flux.frequency_records TO flux_agent;
GRANT SELECT ON flux.frequency_records TO flux_reader;
GRANT SELECT ON flux.frequency_5m, flux.frequency_30m, flux.frequency_1h TO flux_reader;
CREATE POLICY agent_own_site ON flux.frequency_records TO flux_agent
    USING (site_id = ANY (flux.sites_of(current_user)))
    WITH CHECK (site_id = ANY (flux.sites_of(current_user)));
CREATE POLICY reader_all ON flux.frequency_records FOR SELECT TO flux_reader USING (true);
ALTER TABLE flux.frequency_records ENABLE ROW LEVEL SECURITY;

-- ----------------------------------------------------------------------------------- api

CREATE VIEW api.frequency_records WITH (security_invoker = true) AS
    SELECT * FROM flux.frequency_records;
CREATE VIEW api.frequency_5m WITH (security_invoker = true) AS SELECT * FROM flux.frequency_5m;
CREATE VIEW api.frequency_30m WITH (security_invoker = true) AS
    SELECT * FROM flux.frequency_30m;
CREATE VIEW api.frequency_1h WITH (security_invoker = true) AS SELECT * FROM flux.frequency_1h;
GRANT SELECT ON api.frequency_records, api.frequency_5m, api.frequency_30m, api.frequency_1h
    TO flux_reader;
