-- Rollups on TimescaleDB: hypertables, continuous aggregates at 5 m (from the readings),
-- 30 m and 1 h (hierarchical, from the 5 m aggregate), compression and retention.
-- Same relation and column names as the plain-PostgreSQL branch, so the API, dashboards
-- and tests read either. Written to the TimescaleDB 2.x documentation (create_hypertable,
-- CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous), add_continuous_aggregate_policy,
-- add_compression_policy, add_retention_policy); hierarchical aggregates need 2.9 or later.
--
-- Energy is the sum of per-reading deltas derived at ingest (continuous aggregates cannot
-- use window functions, so counter resets are resolved before the rows land).

-- TimescaleDB refuses continuous aggregates on tables with row-level security and
-- compression together with it (timescale/timescaledb#6832, #6827). On this branch the
-- two reading hypertables therefore check the agent's site with a row trigger instead of
-- RLS. Limitation of this branch: an agent can read other sites' raw readings (it needs
-- SELECT for the ingest lookups); decisions and status keep RLS (no aggregate over them).
ALTER TABLE flux.bess_readings DISABLE ROW LEVEL SECURITY;
ALTER TABLE flux.meter_readings DISABLE ROW LEVEL SECURITY;

CREATE FUNCTION flux.check_agent_site() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Superusers are members of every role; like RLS, the check does not apply to them.
    IF pg_has_role(current_user, 'flux_agent', 'MEMBER')
       AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
       AND NOT (NEW.site_id = ANY (flux.sites_of(current_user))) THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER bess_agent_site BEFORE INSERT OR UPDATE ON flux.bess_readings
    FOR EACH ROW EXECUTE FUNCTION flux.check_agent_site();
CREATE TRIGGER meter_agent_site BEFORE INSERT OR UPDATE ON flux.meter_readings
    FOR EACH ROW EXECUTE FUNCTION flux.check_agent_site();

SELECT create_hypertable('flux.bess_readings', 'time', chunk_time_interval => interval '7 days',
                         if_not_exists => true, migrate_data => true);
SELECT create_hypertable('flux.meter_readings', 'time', chunk_time_interval => interval '7 days',
                         if_not_exists => true, migrate_data => true);
SELECT create_hypertable('flux.control_decisions', 'time', chunk_time_interval => interval '7 days',
                         if_not_exists => true, migrate_data => true);
SELECT create_hypertable('flux.agent_status', 'time', chunk_time_interval => interval '30 days',
                         if_not_exists => true, migrate_data => true);

ALTER TABLE flux.bess_readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'site_id, device', timescaledb.compress_orderby = 'time');
ALTER TABLE flux.meter_readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'site_id, device', timescaledb.compress_orderby = 'time');
SELECT add_compression_policy('flux.bess_readings', interval '30 days');
SELECT add_compression_policy('flux.meter_readings', interval '30 days');

-- Raw readings for two years; the rollups are kept.
SELECT add_retention_policy('flux.bess_readings', interval '730 days');
SELECT add_retention_policy('flux.meter_readings', interval '730 days');
SELECT add_retention_policy('flux.agent_status', interval '90 days');

CREATE MATERIALIZED VIEW flux.bess_5m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '5 minutes', time) AS bucket, site_id, device,
       count(*) AS samples,
       avg(soe_kwh) AS soe_avg_kwh, min(soe_kwh) AS soe_min_kwh, max(soe_kwh) AS soe_max_kwh,
       avg(target_power_kw) AS target_power_avg_kw, min(target_power_kw) AS target_power_min_kw,
       max(target_power_kw) AS target_power_max_kw,
       count(actual_power_kw) AS actual_samples, avg(actual_power_kw) AS actual_power_avg_kw,
       min(actual_power_kw) AS actual_power_min_kw, max(actual_power_kw) AS actual_power_max_kw
FROM flux.bess_readings
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.meter_5m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '5 minutes', time) AS bucket, site_id, device,
       count(*) AS samples,
       avg(power_kw) AS power_avg_kw, min(power_kw) AS power_min_kw, max(power_kw) AS power_max_kw,
       avg(frequency_hz) AS frequency_avg_hz, min(frequency_hz) AS frequency_min_hz,
       max(frequency_hz) AS frequency_max_hz,
       avg(voltage_v) AS voltage_avg_v, min(voltage_v) AS voltage_min_v,
       max(voltage_v) AS voltage_max_v,
       avg(reactive_kvar) AS reactive_avg_kvar, avg(power_factor) AS power_factor_avg,
       sum(energy_import_delta_kwh) AS energy_import_kwh,
       sum(energy_export_delta_kwh) AS energy_export_kwh
FROM flux.meter_readings
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.bess_30m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '30 minutes', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(soe_avg_kwh * samples) / sum(samples) AS soe_avg_kwh,
       min(soe_min_kwh) AS soe_min_kwh, max(soe_max_kwh) AS soe_max_kwh,
       sum(target_power_avg_kw * samples) / sum(samples) AS target_power_avg_kw,
       min(target_power_min_kw) AS target_power_min_kw,
       max(target_power_max_kw) AS target_power_max_kw,
       sum(actual_samples) AS actual_samples,
       sum(actual_power_avg_kw * actual_samples) / nullif(sum(actual_samples), 0)
           AS actual_power_avg_kw,
       min(actual_power_min_kw) AS actual_power_min_kw,
       max(actual_power_max_kw) AS actual_power_max_kw
FROM flux.bess_5m
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.bess_1h WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(soe_avg_kwh * samples) / sum(samples) AS soe_avg_kwh,
       min(soe_min_kwh) AS soe_min_kwh, max(soe_max_kwh) AS soe_max_kwh,
       sum(target_power_avg_kw * samples) / sum(samples) AS target_power_avg_kw,
       min(target_power_min_kw) AS target_power_min_kw,
       max(target_power_max_kw) AS target_power_max_kw,
       sum(actual_samples) AS actual_samples,
       sum(actual_power_avg_kw * actual_samples) / nullif(sum(actual_samples), 0)
           AS actual_power_avg_kw,
       min(actual_power_min_kw) AS actual_power_min_kw,
       max(actual_power_max_kw) AS actual_power_max_kw
FROM flux.bess_5m
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.meter_30m WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '30 minutes', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(power_avg_kw * samples) / sum(samples) AS power_avg_kw,
       min(power_min_kw) AS power_min_kw, max(power_max_kw) AS power_max_kw,
       sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
       min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
       sum(voltage_avg_v * samples) / sum(samples) AS voltage_avg_v,
       min(voltage_min_v) AS voltage_min_v, max(voltage_max_v) AS voltage_max_v,
       sum(reactive_avg_kvar * samples) / sum(samples) AS reactive_avg_kvar,
       sum(power_factor_avg * samples) / sum(samples) AS power_factor_avg,
       sum(energy_import_kwh) AS energy_import_kwh, sum(energy_export_kwh) AS energy_export_kwh
FROM flux.meter_5m
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW flux.meter_1h WITH (timescaledb.continuous) AS
SELECT time_bucket(interval '1 hour', bucket) AS bucket, site_id, device,
       sum(samples) AS samples,
       sum(power_avg_kw * samples) / sum(samples) AS power_avg_kw,
       min(power_min_kw) AS power_min_kw, max(power_max_kw) AS power_max_kw,
       sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
       min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
       sum(voltage_avg_v * samples) / sum(samples) AS voltage_avg_v,
       min(voltage_min_v) AS voltage_min_v, max(voltage_max_v) AS voltage_max_v,
       sum(reactive_avg_kvar * samples) / sum(samples) AS reactive_avg_kvar,
       sum(power_factor_avg * samples) / sum(samples) AS power_factor_avg,
       sum(energy_import_kwh) AS energy_import_kwh, sum(energy_export_kwh) AS energy_export_kwh
FROM flux.meter_5m
GROUP BY 1, 2, 3
WITH NO DATA;

-- A backlog older than start_offset after a long outage is caught up by `flux db refresh`,
-- which refreshes the whole range.
SELECT add_continuous_aggregate_policy('flux.bess_5m', start_offset => interval '30 days',
    end_offset => interval '5 minutes', schedule_interval => interval '5 minutes');
SELECT add_continuous_aggregate_policy('flux.meter_5m', start_offset => interval '30 days',
    end_offset => interval '5 minutes', schedule_interval => interval '5 minutes');
SELECT add_continuous_aggregate_policy('flux.bess_30m', start_offset => interval '30 days',
    end_offset => interval '30 minutes', schedule_interval => interval '15 minutes');
SELECT add_continuous_aggregate_policy('flux.meter_30m', start_offset => interval '30 days',
    end_offset => interval '30 minutes', schedule_interval => interval '15 minutes');
SELECT add_continuous_aggregate_policy('flux.bess_1h', start_offset => interval '30 days',
    end_offset => interval '1 hour', schedule_interval => interval '30 minutes');
SELECT add_continuous_aggregate_policy('flux.meter_1h', start_offset => interval '30 days',
    end_offset => interval '1 hour', schedule_interval => interval '30 minutes');

-- Policies keep the aggregates current; the function exists so the uploader's call is the
-- same on both branches. (refresh_continuous_aggregate cannot run inside a function's
-- transaction; `flux db refresh` calls it directly.)
CREATE FUNCTION flux.refresh_rollups() RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;

GRANT EXECUTE ON FUNCTION flux.refresh_rollups() TO flux_agent;
GRANT SELECT ON flux.bess_5m, flux.bess_30m, flux.bess_1h, flux.meter_5m, flux.meter_30m,
    flux.meter_1h TO flux_reader;
