-- Rollups in one pass over the raw rows (plain PostgreSQL).
--
-- 0002 wrote the 5 m rows and then read them back twice, by index, for 30 m and 1 h; on a
-- backlog that re-reading cost more than the aggregation itself. The dirty spans are whole
-- hours, so the 5 m rows computed from the raw readings of a span already hold every 5 m
-- bucket of its 30 m and 1 h buckets: one statement per source now aggregates the raw
-- rows once, keeps the 5 m result in memory, and derives 30 m from it and 1 h from 30 m.
-- The arithmetic is 0002's (averages weighted by sample counts, energy as sums), with
-- avg(x) written sum(x) / count(x): the same value, without avg's sum of squares.

DROP FUNCTION flux.rollup_from_5m(text, text, interval, text[], text[], timestamptz[],
                                  timestamptz[]);

-- Recompute the 5 m, 30 m and 1 h rows of one source ('bess' or 'meter') over the given
-- (site, device, [lo, hi)) spans; lo and hi are whole hours.
CREATE FUNCTION flux.rebuild_rollups(p_source text, p_sites text[], p_devices text[],
                                     p_los timestamptz[], p_his timestamptz[])
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, flux AS $$
DECLARE
    width text;
    raw text;      -- aggregates of raw readings, named as the rollup columns
    combine text;  -- the same columns from finer rollup rows
BEGIN
    FOREACH width IN ARRAY ARRAY['5m', '30m', '1h'] LOOP
        EXECUTE format(
            'DELETE FROM flux.%I r USING unnest($1, $2, $3, $4) AS w(site_id, device, lo, hi)
             WHERE r.site_id = w.site_id AND r.device = w.device
               AND r.bucket >= w.lo AND r.bucket < w.hi', p_source || '_' || width)
        USING p_sites, p_devices, p_los, p_his;
    END LOOP;

    IF p_source = 'bess' THEN
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
    ELSE
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
        raw, combine, p_source || '_readings', p_source || '_5m', p_source || '_30m',
        p_source || '_1h')
    USING p_sites, p_devices, p_los, p_his;
END
$$;

CREATE OR REPLACE FUNCTION flux.refresh_rollups() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flux SET work_mem = '64MB' AS $$
DECLARE
    b record;
    m record;
BEGIN
    -- One refresher at a time; a second waits and then finds little or nothing to do.
    PERFORM pg_advisory_xact_lock(hashtext('flux.refresh_rollups'));
    b := flux.take_dirty('bess');
    m := flux.take_dirty('meter');
    IF b.hours > 0 THEN
        PERFORM flux.rebuild_rollups('bess', b.sites, b.devices, b.los, b.his);
    END IF;
    IF m.hours > 0 THEN
        PERFORM flux.rebuild_rollups('meter', m.sites, m.devices, m.los, m.his);
    END IF;
    RETURN b.hours + m.hours;
END
$$;

REVOKE ALL ON FUNCTION flux.rebuild_rollups(text, text[], text[], timestamptz[], timestamptz[])
    FROM PUBLIC;
