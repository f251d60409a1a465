-- Rollups on plain PostgreSQL: tables with the names the TimescaleDB branch gives its
-- continuous aggregates, kept current by flux.refresh_rollups() (the uploader calls it
-- after each batch; `flux db refresh` runs it).
--
-- Incremental: statement triggers record the time span of every insert (or delta fix-up)
-- in flux.rollup_dirty; the refresh recomputes only the hours those spans touch. Buckets
-- are UTC-aligned (date_bin from 2000-01-01 00:00 UTC), like time_bucket's.
-- Averages roll up weighted by sample counts; energy is the sum of per-reading deltas
-- (see meter_readings), so 30 m and 1 h are exact sums of the 5 m rows.

CREATE TABLE flux.rollup_dirty (
    source  text NOT NULL CHECK (source IN ('bess', 'meter')),
    lo      timestamptz NOT NULL,
    hi      timestamptz NOT NULL
);

CREATE FUNCTION flux.mark_dirty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux AS $$
BEGIN
    INSERT INTO flux.rollup_dirty (source, lo, hi)
    SELECT TG_ARGV[0], min(time), max(time) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER bess_dirty AFTER INSERT ON flux.bess_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flux.mark_dirty('bess');
CREATE TRIGGER meter_dirty_insert AFTER INSERT ON flux.meter_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flux.mark_dirty('meter');
CREATE TRIGGER meter_dirty_update AFTER UPDATE ON flux.meter_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flux.mark_dirty('meter');

CREATE TABLE flux.bess_5m (
    bucket               timestamptz NOT NULL,
    site_id              text NOT NULL,
    device               text NOT NULL,
    samples              bigint NOT NULL,
    soe_avg_kwh          double precision,
    soe_min_kwh          double precision,
    soe_max_kwh          double precision,
    target_power_avg_kw  double precision,
    target_power_min_kw  double precision,
    target_power_max_kw  double precision,
    actual_samples       bigint NOT NULL,
    actual_power_avg_kw  double precision,
    actual_power_min_kw  double precision,
    actual_power_max_kw  double precision,
    PRIMARY KEY (site_id, device, bucket)
);
CREATE TABLE flux.bess_30m (LIKE flux.bess_5m INCLUDING ALL);
CREATE TABLE flux.bess_1h (LIKE flux.bess_5m INCLUDING ALL);

CREATE TABLE flux.meter_5m (
    bucket              timestamptz NOT NULL,
    site_id             text NOT NULL,
    device              text NOT NULL,
    samples             bigint NOT NULL,
    power_avg_kw        double precision,
    power_min_kw        double precision,
    power_max_kw        double precision,
    frequency_avg_hz    double precision,
    frequency_min_hz    double precision,
    frequency_max_hz    double precision,
    voltage_avg_v       double precision,
    voltage_min_v       double precision,
    voltage_max_v       double precision,
    reactive_avg_kvar   double precision,
    power_factor_avg    double precision,
    energy_import_kwh   double precision,
    energy_export_kwh   double precision,
    PRIMARY KEY (site_id, device, bucket)
);
CREATE TABLE flux.meter_30m (LIKE flux.meter_5m INCLUDING ALL);
CREATE TABLE flux.meter_1h (LIKE flux.meter_5m INCLUDING ALL);

CREATE INDEX bess_5m_bucket ON flux.bess_5m (bucket);
CREATE INDEX bess_30m_bucket ON flux.bess_30m (bucket);
CREATE INDEX bess_1h_bucket ON flux.bess_1h (bucket);
CREATE INDEX meter_5m_bucket ON flux.meter_5m (bucket);
CREATE INDEX meter_30m_bucket ON flux.meter_30m (bucket);
CREATE INDEX meter_1h_bucket ON flux.meter_1h (bucket);

-- Recompute the 30 m or 1 h rows of the given hours from the 5 m rows.
CREATE FUNCTION flux.rollup_bess_from_5m(p_table text, p_width interval, p_hours timestamptz[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
BEGIN
    EXECUTE format('DELETE FROM flux.%I r USING unnest($1) h
                    WHERE r.bucket >= h AND r.bucket < h + interval ''1 hour''', p_table)
    USING p_hours;
    EXECUTE format($q$
        INSERT INTO flux.%I
        SELECT date_bin($2, f.bucket, timestamptz '2000-01-01 00:00+00'), site_id, device,
               sum(samples),
               sum(soe_avg_kwh * samples) / sum(samples), min(soe_min_kwh), max(soe_max_kwh),
               sum(target_power_avg_kw * samples) / sum(samples),
               min(target_power_min_kw), max(target_power_max_kw),
               sum(actual_samples),
               sum(actual_power_avg_kw * actual_samples) / nullif(sum(actual_samples), 0),
               min(actual_power_min_kw), max(actual_power_max_kw)
        FROM unnest($1) h
        JOIN flux.bess_5m f ON f.bucket >= h AND f.bucket < h + interval '1 hour'
        GROUP BY 1, 2, 3
    $q$, p_table) USING p_hours, p_width;
END
$$;

CREATE FUNCTION flux.rollup_meter_from_5m(p_table text, p_width interval, p_hours timestamptz[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
BEGIN
    EXECUTE format('DELETE FROM flux.%I r USING unnest($1) h
                    WHERE r.bucket >= h AND r.bucket < h + interval ''1 hour''', p_table)
    USING p_hours;
    EXECUTE format($q$
        INSERT INTO flux.%I
        SELECT date_bin($2, f.bucket, timestamptz '2000-01-01 00:00+00'), site_id, device,
               sum(samples),
               sum(power_avg_kw * samples) / sum(samples), min(power_min_kw), max(power_max_kw),
               sum(frequency_avg_hz * samples) / sum(samples),
               min(frequency_min_hz), max(frequency_max_hz),
               sum(voltage_avg_v * samples) / sum(samples), min(voltage_min_v), max(voltage_max_v),
               sum(reactive_avg_kvar * samples) / sum(samples),
               sum(power_factor_avg * samples) / sum(samples),
               sum(energy_import_kwh), sum(energy_export_kwh)
        FROM unnest($1) h
        JOIN flux.meter_5m f ON f.bucket >= h AND f.bucket < h + interval '1 hour'
        GROUP BY 1, 2, 3
    $q$, p_table) USING p_hours, p_width;
END
$$;

-- Bring every rollup up to date with the raw readings; returns the number of hours redone.
CREATE FUNCTION flux.refresh_rollups() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux AS $$
DECLARE
    origin constant timestamptz := timestamptz '2000-01-01 00:00+00';
    bess_hours timestamptz[];
    meter_hours timestamptz[];
BEGIN
    -- One refresher at a time; a second waits and then finds little or nothing to do.
    PERFORM pg_advisory_xact_lock(hashtext('flux.refresh_rollups'));

    WITH d AS (DELETE FROM flux.rollup_dirty WHERE source = 'bess' RETURNING lo, hi)
    SELECT coalesce(array_agg(DISTINCT h), '{}') INTO bess_hours
    FROM d, generate_series(date_bin('1 hour', d.lo, origin), date_bin('1 hour', d.hi, origin),
                            interval '1 hour') h;

    WITH d AS (DELETE FROM flux.rollup_dirty WHERE source = 'meter' RETURNING lo, hi)
    SELECT coalesce(array_agg(DISTINCT h), '{}') INTO meter_hours
    FROM d, generate_series(date_bin('1 hour', d.lo, origin), date_bin('1 hour', d.hi, origin),
                            interval '1 hour') h;

    IF cardinality(bess_hours) > 0 THEN
        DELETE FROM flux.bess_5m r USING unnest(bess_hours) h
        WHERE r.bucket >= h AND r.bucket < h + interval '1 hour';
        INSERT INTO flux.bess_5m
        SELECT date_bin('5 minutes', b.time, origin), b.site_id, b.device, count(*),
               avg(soe_kwh), min(soe_kwh), max(soe_kwh),
               avg(target_power_kw), min(target_power_kw), max(target_power_kw),
               count(actual_power_kw), avg(actual_power_kw), min(actual_power_kw),
               max(actual_power_kw)
        FROM unnest(bess_hours) h
        JOIN flux.bess_readings b ON b.time >= h AND b.time < h + interval '1 hour'
        GROUP BY 1, 2, 3;
        PERFORM flux.rollup_bess_from_5m('bess_30m', interval '30 minutes', bess_hours);
        PERFORM flux.rollup_bess_from_5m('bess_1h', interval '1 hour', bess_hours);
    END IF;

    IF cardinality(meter_hours) > 0 THEN
        DELETE FROM flux.meter_5m r USING unnest(meter_hours) h
        WHERE r.bucket >= h AND r.bucket < h + interval '1 hour';
        INSERT INTO flux.meter_5m
        SELECT date_bin('5 minutes', m.time, origin), m.site_id, m.device, count(*),
               avg(power_kw), min(power_kw), max(power_kw),
               avg(frequency_hz), min(frequency_hz), max(frequency_hz),
               avg(voltage_v), min(voltage_v), max(voltage_v),
               avg(reactive_kvar), avg(power_factor),
               sum(energy_import_delta_kwh), sum(energy_export_delta_kwh)
        FROM unnest(meter_hours) h
        JOIN flux.meter_readings m ON m.time >= h AND m.time < h + interval '1 hour'
        GROUP BY 1, 2, 3;
        PERFORM flux.rollup_meter_from_5m('meter_30m', interval '30 minutes', meter_hours);
        PERFORM flux.rollup_meter_from_5m('meter_1h', interval '1 hour', meter_hours);
    END IF;

    RETURN cardinality(bess_hours) + cardinality(meter_hours);
END
$$;

REVOKE ALL ON FUNCTION flux.refresh_rollups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flux.refresh_rollups() TO flux_agent;
GRANT SELECT ON flux.bess_5m, flux.bess_30m, flux.bess_1h, flux.meter_5m, flux.meter_30m,
    flux.meter_1h TO flux_reader;
