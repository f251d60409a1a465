-- Rollups on plain PostgreSQL: tables with the names the TimescaleDB branch gives its
-- continuous aggregates, kept current by flux.refresh_rollups() (the uploader calls it
-- after uploading; `flux db refresh` runs it).
--
-- Incremental: statement triggers record, per site and device, the time span of every
-- insert (or delta fix-up) in flux.rollup_dirty; the refresh recomputes only those
-- devices' hours, reading the raw rows by primary key. Buckets are UTC-aligned (date_bin
-- from 2000-01-01 00:00 UTC), like time_bucket's. Averages roll up weighted by sample
-- counts; energy is the sum of per-reading deltas (see meter_readings), so 30 m and 1 h
-- are exact sums of the 5 m rows.

CREATE TABLE flux.rollup_dirty (
    source   text NOT NULL CHECK (source IN ('bess', 'meter')),
    site_id  text NOT NULL,
    device   text NOT NULL,
    lo       timestamptz NOT NULL,
    hi       timestamptz NOT NULL
);

CREATE FUNCTION flux.mark_dirty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux AS $$
BEGIN
    INSERT INTO flux.rollup_dirty (source, site_id, device, lo, hi)
    SELECT TG_ARGV[0], site_id, device, min(time), max(time) FROM new_rows
    GROUP BY site_id, device;
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

-- The dirty spans of one source, removed from the dirty list, widened to whole hours and
-- merged per device (overlapping or touching spans become one).
CREATE FUNCTION flux.take_dirty(p_source text, OUT sites text[], OUT devices text[],
                                OUT los timestamptz[], OUT his timestamptz[], OUT hours integer)
LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
BEGIN
    WITH d AS (
        DELETE FROM flux.rollup_dirty WHERE source = p_source
        RETURNING site_id, device,
                  date_bin('1 hour', lo, timestamptz '2000-01-01 00:00+00') AS lo,
                  date_bin('1 hour', hi, timestamptz '2000-01-01 00:00+00') + interval '1 hour'
                      AS hi
    ), o AS (
        SELECT d.*, max(hi) OVER (PARTITION BY site_id, device ORDER BY lo, hi
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_hi
        FROM d
    ), g AS (
        SELECT o.*, count(*) FILTER (WHERE prev_hi IS NULL OR lo > prev_hi)
                        OVER (PARTITION BY site_id, device ORDER BY lo, hi) AS grp
        FROM o
    ), r AS (
        SELECT site_id, device, min(lo) AS lo, max(hi) AS hi FROM g GROUP BY site_id, device, grp
    )
    SELECT coalesce(array_agg(r.site_id), '{}'), coalesce(array_agg(r.device), '{}'),
           coalesce(array_agg(r.lo), '{}'), coalesce(array_agg(r.hi), '{}'),
           coalesce(sum(extract(epoch FROM r.hi - r.lo) / 3600), 0)::integer
    INTO sites, devices, los, his, hours
    FROM r;
END
$$;

-- Recompute the 30 m or 1 h rows of the given (site, device, [lo, hi)) spans from 5 m rows.
CREATE FUNCTION flux.rollup_from_5m(p_source text, p_table text, p_width interval,
                                    p_sites text[], p_devices text[], p_los timestamptz[],
                                    p_his timestamptz[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
DECLARE
    cols text;
BEGIN
    EXECUTE format(
        'DELETE FROM flux.%I r USING unnest($1, $2, $3, $4) AS w(site_id, device, lo, hi)
         WHERE r.site_id = w.site_id AND r.device = w.device
           AND r.bucket >= w.lo AND r.bucket < w.hi', p_table)
    USING p_sites, p_devices, p_los, p_his;
    IF p_source = 'bess' THEN
        cols := $c$
            sum(samples),
            sum(soe_avg_kwh * samples) / sum(samples), min(soe_min_kwh), max(soe_max_kwh),
            sum(target_power_avg_kw * samples) / sum(samples),
            min(target_power_min_kw), max(target_power_max_kw),
            sum(actual_samples),
            sum(actual_power_avg_kw * actual_samples) / nullif(sum(actual_samples), 0),
            min(actual_power_min_kw), max(actual_power_max_kw) $c$;
    ELSE
        cols := $c$
            sum(samples),
            sum(power_avg_kw * samples) / sum(samples), min(power_min_kw), max(power_max_kw),
            sum(frequency_avg_hz * samples) / sum(samples),
            min(frequency_min_hz), max(frequency_max_hz),
            sum(voltage_avg_v * samples) / sum(samples), min(voltage_min_v), max(voltage_max_v),
            sum(reactive_avg_kvar * samples) / sum(samples),
            sum(power_factor_avg * samples) / sum(samples),
            sum(energy_import_kwh), sum(energy_export_kwh) $c$;
    END IF;
    EXECUTE format(
        'INSERT INTO flux.%I
         SELECT date_bin($5, f.bucket, timestamptz ''2000-01-01 00:00+00''), f.site_id,
                f.device, %s
         FROM unnest($1, $2, $3, $4) AS w(site_id, device, lo, hi)
         JOIN flux.%I f ON f.site_id = w.site_id AND f.device = w.device
                       AND f.bucket >= w.lo AND f.bucket < w.hi
         GROUP BY 1, 2, 3', p_table, cols, p_source || '_5m')
    USING p_sites, p_devices, p_los, p_his, p_width;
END
$$;

-- Bring every rollup up to date with the raw readings; returns the number of device-hours
-- recomputed.
CREATE FUNCTION flux.refresh_rollups() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux SET work_mem = '64MB' AS $$
DECLARE
    origin constant timestamptz := timestamptz '2000-01-01 00:00+00';
    b record;
    m record;
BEGIN
    -- One refresher at a time; a second waits and then finds little or nothing to do.
    PERFORM pg_advisory_xact_lock(hashtext('flux.refresh_rollups'));
    b := flux.take_dirty('bess');
    m := flux.take_dirty('meter');

    IF b.hours > 0 THEN
        DELETE FROM flux.bess_5m r
        USING unnest(b.sites, b.devices, b.los, b.his) AS w(site_id, device, lo, hi)
        WHERE r.site_id = w.site_id AND r.device = w.device
          AND r.bucket >= w.lo AND r.bucket < w.hi;
        INSERT INTO flux.bess_5m
        SELECT date_bin('5 minutes', x.time, origin), x.site_id, x.device, count(*),
               avg(soe_kwh), min(soe_kwh), max(soe_kwh),
               avg(target_power_kw), min(target_power_kw), max(target_power_kw),
               count(actual_power_kw), avg(actual_power_kw), min(actual_power_kw),
               max(actual_power_kw)
        FROM unnest(b.sites, b.devices, b.los, b.his) AS w(site_id, device, lo, hi)
        JOIN flux.bess_readings x ON x.site_id = w.site_id AND x.device = w.device
                                 AND x.time >= w.lo AND x.time < w.hi
        GROUP BY 1, 2, 3;
        PERFORM flux.rollup_from_5m('bess', 'bess_30m', interval '30 minutes',
                                    b.sites, b.devices, b.los, b.his);
        PERFORM flux.rollup_from_5m('bess', 'bess_1h', interval '1 hour',
                                    b.sites, b.devices, b.los, b.his);
    END IF;

    IF m.hours > 0 THEN
        DELETE FROM flux.meter_5m r
        USING unnest(m.sites, m.devices, m.los, m.his) AS w(site_id, device, lo, hi)
        WHERE r.site_id = w.site_id AND r.device = w.device
          AND r.bucket >= w.lo AND r.bucket < w.hi;
        INSERT INTO flux.meter_5m
        SELECT date_bin('5 minutes', x.time, origin), x.site_id, x.device, count(*),
               avg(power_kw), min(power_kw), max(power_kw),
               avg(frequency_hz), min(frequency_hz), max(frequency_hz),
               avg(voltage_v), min(voltage_v), max(voltage_v),
               avg(reactive_kvar), avg(power_factor),
               sum(energy_import_delta_kwh), sum(energy_export_delta_kwh)
        FROM unnest(m.sites, m.devices, m.los, m.his) AS w(site_id, device, lo, hi)
        JOIN flux.meter_readings x ON x.site_id = w.site_id AND x.device = w.device
                                  AND x.time >= w.lo AND x.time < w.hi
        GROUP BY 1, 2, 3;
        PERFORM flux.rollup_from_5m('meter', 'meter_30m', interval '30 minutes',
                                    m.sites, m.devices, m.los, m.his);
        PERFORM flux.rollup_from_5m('meter', 'meter_1h', interval '1 hour',
                                    m.sites, m.devices, m.los, m.his);
    END IF;

    RETURN b.hours + m.hours;
END
$$;

REVOKE ALL ON FUNCTION flux.take_dirty(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flux.rollup_from_5m(text, text, interval, text[], text[], timestamptz[],
                                           timestamptz[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION flux.refresh_rollups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flux.refresh_rollups() TO flux_agent;
GRANT SELECT ON flux.bess_5m, flux.bess_30m, flux.bess_1h, flux.meter_5m, flux.meter_30m,
    flux.meter_1h TO flux_reader;
