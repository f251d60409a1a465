-- The rollup functions of the API hand back every resolution as the 5-minute row type.
-- On TimescaleDB the 30 m and 1 h rollups are continuous aggregates whose sums of
-- bigint counts are numeric, which RETURN QUERY refuses ("structure of query does not
-- match function result type"): select each column cast to the 5-minute view's type.
-- Same behaviour on plain PostgreSQL, where the types already match.

CREATE OR REPLACE FUNCTION api.meter_rollup(site text, resolution text, since timestamptz, until timestamptz)
RETURNS SETOF api.meter_5m
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
DECLARE
    cols text;
BEGIN
    IF resolution NOT IN ('5m', '30m', '1h') THEN
        RAISE EXCEPTION 'resolution must be 5m, 30m or 1h, not %', resolution
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(format('%I::%s', attname, format_type(atttypid, atttypmod)), ', '
                      ORDER BY attnum)
      INTO cols
      FROM pg_attribute
     WHERE attrelid = 'api.meter_5m'::regclass AND attnum > 0 AND NOT attisdropped;
    RETURN QUERY EXECUTE format(
        'SELECT %s FROM api.%I WHERE site_id = $1 AND bucket >= $2 AND bucket < $3
         ORDER BY device, bucket', cols, 'meter_' || resolution)
    USING site, since, until;
END
$$;

CREATE OR REPLACE FUNCTION api.bess_rollup(site text, resolution text, since timestamptz, until timestamptz)
RETURNS SETOF api.bess_5m
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
DECLARE
    cols text;
BEGIN
    IF resolution NOT IN ('5m', '30m', '1h') THEN
        RAISE EXCEPTION 'resolution must be 5m, 30m or 1h, not %', resolution
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(format('%I::%s', attname, format_type(atttypid, atttypmod)), ', '
                      ORDER BY attnum)
      INTO cols
      FROM pg_attribute
     WHERE attrelid = 'api.bess_5m'::regclass AND attnum > 0 AND NOT attisdropped;
    RETURN QUERY EXECUTE format(
        'SELECT %s FROM api.%I WHERE site_id = $1 AND bucket >= $2 AND bucket < $3
         ORDER BY device, bucket', cols, 'bess_' || resolution)
    USING site, since, until;
END
$$;
