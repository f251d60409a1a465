-- Frequency response's performance records (issue 18), plain PostgreSQL.
--
-- While a frequency_response entry is active the agent records one row a second: the
-- grid frequency it read, the response the contract's curve asked for at it, the power
-- the battery delivered, the tolerance that still counts as delivered, and whether the
-- hard envelope cut the response. The 5 m, 30 m and 1 h rollups (flux.frequency_*) sum
-- those seconds; `flux report` reads the per-block performance from them.
--
-- Units: Hz, kW (+ discharge), kWh; each row stands for one second, so kWh = sum(kW) / 3600.
-- Same keys, security and rollup mechanism as the readings (0001, 0002, 0004): row-level
-- security (an agent its own sites, a reader every site), statement triggers recording
-- the spans inserted in flux.rollup_dirty, and flux.refresh_rollups() recomputing them.

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

GRANT SELECT, INSERT ON flux.frequency_records TO flux_agent;
GRANT SELECT ON flux.frequency_records TO flux_reader;
ALTER TABLE flux.frequency_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY agent_own_site ON flux.frequency_records TO flux_agent
    USING (site_id = ANY (flux.sites_of(current_user)))
    WITH CHECK (site_id = ANY (flux.sites_of(current_user)));
CREATE POLICY reader_all ON flux.frequency_records FOR SELECT TO flux_reader USING (true);

-- ------------------------------------------------------------------------------- rollups

ALTER TABLE flux.rollup_dirty DROP CONSTRAINT rollup_dirty_source_check;
ALTER TABLE flux.rollup_dirty ADD CONSTRAINT rollup_dirty_source_check
    CHECK (source IN ('bess', 'meter', 'frequency'));

CREATE TRIGGER frequency_dirty AFTER INSERT ON flux.frequency_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION flux.mark_dirty('frequency');

-- Per bucket: seconds the mode was active (samples), with a response due (a fresh
-- frequency), delivered within tolerance, and cut by the envelope; the mean and largest
-- |delivered - expected| over the seconds a response was due; the frequency; and the
-- energy expected and delivered (kWh, + discharge, net).
CREATE TABLE flux.frequency_5m (
    bucket            timestamptz NOT NULL,
    site_id           text NOT NULL,
    device            text NOT NULL,
    samples           bigint NOT NULL,
    due_samples       bigint NOT NULL,
    within_samples    bigint NOT NULL,
    cut_samples       bigint NOT NULL,
    abs_error_avg_kw  double precision,
    abs_error_max_kw  double precision,
    frequency_avg_hz  double precision,
    frequency_min_hz  double precision,
    frequency_max_hz  double precision,
    expected_kwh      double precision,
    delivered_kwh     double precision,
    PRIMARY KEY (site_id, device, bucket)
);
CREATE TABLE flux.frequency_30m (LIKE flux.frequency_5m INCLUDING ALL);
CREATE TABLE flux.frequency_1h (LIKE flux.frequency_5m INCLUDING ALL);

-- 0004's function, with the frequency records as a third source (and each source's raw
-- table named here: the records are not "_readings").
CREATE OR REPLACE FUNCTION flux.rebuild_rollups(p_source text, p_sites text[], p_devices text[],
                                                p_los timestamptz[], p_his timestamptz[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
DECLARE
    width text;
    raw text;      -- aggregates of raw rows, named as the rollup columns
    combine text;  -- the same columns from finer rollup rows
    source_table text;
BEGIN
    FOREACH width IN ARRAY ARRAY['5m', '30m', '1h'] LOOP
        EXECUTE format(
            'DELETE FROM flux.%I r USING unnest($1, $2, $3, $4) AS w(site_id, device, lo, hi)
             WHERE r.site_id = w.site_id AND r.device = w.device
               AND r.bucket >= w.lo AND r.bucket < w.hi', p_source || '_' || width)
        USING p_sites, p_devices, p_los, p_his;
    END LOOP;

    IF p_source = 'bess' THEN
        source_table := 'bess_readings';
        raw := $c$
            count(*) AS samples,
            sum(soe_kwh) / count(*) AS soe_avg_kwh,
            min(soe_kwh) AS soe_min_kwh, max(soe_kwh) AS soe_max_kwh,
            sum(target_power_kw) / count(*) AS target_power_avg_kw,
            min(target_power_kw) AS target_power_min_kw,
            max(target_power_kw) AS target_power_max_kw,
            count(actual_power_kw) AS actual_samples,
            sum(actual_power_kw) / nullif(count(actual_power_kw), 0) AS actual_power_avg_kw,
            min(actual_power_kw) AS actual_power_min_kw,
            max(actual_power_kw) AS actual_power_max_kw $c$;
        combine := $c$
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
            max(actual_power_max_kw) AS actual_power_max_kw $c$;
    ELSIF p_source = 'meter' THEN
        source_table := 'meter_readings';
        raw := $c$
            count(*) AS samples,
            sum(power_kw) / count(*) AS power_avg_kw,
            min(power_kw) AS power_min_kw, max(power_kw) AS power_max_kw,
            sum(frequency_hz) / count(*) AS frequency_avg_hz,
            min(frequency_hz) AS frequency_min_hz, max(frequency_hz) AS frequency_max_hz,
            sum(voltage_v) / count(*) AS voltage_avg_v,
            min(voltage_v) AS voltage_min_v, max(voltage_v) AS voltage_max_v,
            sum(reactive_kvar) / count(*) AS reactive_avg_kvar,
            sum(power_factor) / count(*) AS power_factor_avg,
            sum(energy_import_delta_kwh) AS energy_import_kwh,
            sum(energy_export_delta_kwh) AS energy_export_kwh $c$;
        combine := $c$
            sum(samples) AS samples,
            sum(power_avg_kw * samples) / sum(samples) AS power_avg_kw,
            min(power_min_kw) AS power_min_kw, max(power_max_kw) AS power_max_kw,
            sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
            min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
            sum(voltage_avg_v * samples) / sum(samples) AS voltage_avg_v,
            min(voltage_min_v) AS voltage_min_v, max(voltage_max_v) AS voltage_max_v,
            sum(reactive_avg_kvar * samples) / sum(samples) AS reactive_avg_kvar,
            sum(power_factor_avg * samples) / sum(samples) AS power_factor_avg,
            sum(energy_import_kwh) AS energy_import_kwh,
            sum(energy_export_kwh) AS energy_export_kwh $c$;
    ELSE
        source_table := 'frequency_records';
        raw := $c$
            count(*) AS samples,
            count(expected_kw) AS due_samples,
            count(*) FILTER (WHERE abs(delivered_kw - expected_kw) <= tolerance_kw)
                AS within_samples,
            count(*) FILTER (WHERE envelope_cut) AS cut_samples,
            sum(abs(delivered_kw - expected_kw)) / nullif(count(expected_kw), 0)
                AS abs_error_avg_kw,
            max(abs(delivered_kw - expected_kw)) AS abs_error_max_kw,
            sum(frequency_hz) / count(*) AS frequency_avg_hz,
            min(frequency_hz) AS frequency_min_hz, max(frequency_hz) AS frequency_max_hz,
            sum(coalesce(expected_kw, 0)) / 3600 AS expected_kwh,
            sum(delivered_kw) / 3600 AS delivered_kwh $c$;
        combine := $c$
            sum(samples) AS samples,
            sum(due_samples) AS due_samples,
            sum(within_samples) AS within_samples,
            sum(cut_samples) AS cut_samples,
            sum(abs_error_avg_kw * due_samples) / nullif(sum(due_samples), 0)
                AS abs_error_avg_kw,
            max(abs_error_max_kw) AS abs_error_max_kw,
            sum(frequency_avg_hz * samples) / sum(samples) AS frequency_avg_hz,
            min(frequency_min_hz) AS frequency_min_hz, max(frequency_max_hz) AS frequency_max_hz,
            sum(expected_kwh) AS expected_kwh,
            sum(delivered_kwh) AS delivered_kwh $c$;
    END IF;

    -- Sibling data-modifying CTEs see one snapshot, so the DELETEs above stay separate
    -- statements: an INSERT here must not meet the rows it replaces.
    EXECUTE format(
        $q$
        WITH five AS MATERIALIZED (
            SELECT date_bin('5 minutes', x.time, timestamptz '2000-01-01 00:00+00') AS bucket,
                   x.site_id, x.device, %1$s
            FROM unnest($1, $2, $3, $4) AS w(site_id, device, lo, hi)
            JOIN flux.%3$I x ON x.site_id = w.site_id AND x.device = w.device
                            AND x.time >= w.lo AND x.time < w.hi
            GROUP BY 1, 2, 3
        ), put_five AS (
            INSERT INTO flux.%4$I SELECT * FROM five
        ), thirty AS MATERIALIZED (
            SELECT date_bin('30 minutes', bucket, timestamptz '2000-01-01 00:00+00') AS bucket,
                   site_id, device, %2$s
            FROM five GROUP BY 1, 2, 3
        ), put_thirty AS (
            INSERT INTO flux.%5$I SELECT * FROM thirty
        )
        INSERT INTO flux.%6$I
        SELECT date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00+00') AS bucket,
               site_id, device, %2$s
        FROM thirty GROUP BY 1, 2, 3
        $q$,
        raw, combine, source_table, p_source || '_5m', p_source || '_30m',
        p_source || '_1h')
    USING p_sites, p_devices, p_los, p_his;
END
$$;

CREATE OR REPLACE FUNCTION flux.refresh_rollups() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux SET work_mem = '64MB' AS $$
DECLARE
    b record;
    m record;
    f record;
BEGIN
    -- One refresher at a time; a second waits and then finds little or nothing to do.
    PERFORM pg_advisory_xact_lock(hashtext('flux.refresh_rollups'));
    b := flux.take_dirty('bess');
    m := flux.take_dirty('meter');
    f := flux.take_dirty('frequency');
    IF b.hours > 0 THEN
        PERFORM flux.rebuild_rollups('bess', b.sites, b.devices, b.los, b.his);
    END IF;
    IF m.hours > 0 THEN
        PERFORM flux.rebuild_rollups('meter', m.sites, m.devices, m.los, m.his);
    END IF;
    IF f.hours > 0 THEN
        PERFORM flux.rebuild_rollups('frequency', f.sites, f.devices, f.los, f.his);
    END IF;
    RETURN b.hours + m.hours + f.hours;
END
$$;

GRANT SELECT ON flux.frequency_5m, flux.frequency_30m, flux.frequency_1h TO flux_reader;

-- ----------------------------------------------------------------------------------- api

CREATE VIEW api.frequency_records WITH (security_invoker = true) AS
    SELECT * FROM flux.frequency_records;
CREATE VIEW api.frequency_5m WITH (security_invoker = true) AS SELECT * FROM flux.frequency_5m;
CREATE VIEW api.frequency_30m WITH (security_invoker = true) AS
    SELECT * FROM flux.frequency_30m;
CREATE VIEW api.frequency_1h WITH (security_invoker = true) AS SELECT * FROM flux.frequency_1h;
GRANT SELECT ON api.frequency_records, api.frequency_5m, api.frequency_30m, api.frequency_1h
    TO flux_reader;
