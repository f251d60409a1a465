-- The `api` schema PostgREST serves (db-schemas = api). Views run with the caller's rights
-- (security_invoker), so row-level security on flux.* applies: a dashboard reader sees every
-- site, an agent only its own, the anonymous role nothing. Filter by site and time with
-- PostgREST operators, e.g. /meter_5m?site_id=eq.wlce&bucket=gte.2026-01-01.

CREATE SCHEMA IF NOT EXISTS api;

CREATE VIEW api.sites WITH (security_invoker = true) AS
    SELECT site_id, name, timezone, created_at FROM flux.sites;
CREATE VIEW api.devices WITH (security_invoker = true) AS
    SELECT site_id, device, kind, first_seen FROM flux.devices;
CREATE VIEW api.bess_readings WITH (security_invoker = true) AS
    SELECT * FROM flux.bess_readings;
CREATE VIEW api.meter_readings WITH (security_invoker = true) AS
    SELECT * FROM flux.meter_readings;
CREATE VIEW api.decisions WITH (security_invoker = true) AS
    SELECT * FROM flux.control_decisions;
CREATE VIEW api.market_data WITH (security_invoker = true) AS
    SELECT * FROM flux.market_data;
CREATE VIEW api.config_revisions WITH (security_invoker = true) AS
    SELECT * FROM flux.config_revisions;
CREATE VIEW api.agent_status WITH (security_invoker = true) AS
    SELECT * FROM flux.agent_status;
CREATE VIEW api.bess_5m WITH (security_invoker = true) AS SELECT * FROM flux.bess_5m;
CREATE VIEW api.bess_30m WITH (security_invoker = true) AS SELECT * FROM flux.bess_30m;
CREATE VIEW api.bess_1h WITH (security_invoker = true) AS SELECT * FROM flux.bess_1h;
CREATE VIEW api.meter_5m WITH (security_invoker = true) AS SELECT * FROM flux.meter_5m;
CREATE VIEW api.meter_30m WITH (security_invoker = true) AS SELECT * FROM flux.meter_30m;
CREATE VIEW api.meter_1h WITH (security_invoker = true) AS SELECT * FROM flux.meter_1h;

-- The newest heartbeat of each site, with its age in seconds.
CREATE VIEW api.latest_status WITH (security_invoker = true) AS
    SELECT DISTINCT ON (site_id) site_id, time, conditions,
           extract(epoch FROM now() - time) AS age_s
    FROM flux.agent_status
    ORDER BY site_id, time DESC;

-- The newest decision of each site.
CREATE VIEW api.latest_decision WITH (security_invoker = true) AS
    SELECT DISTINCT ON (site_id) * FROM flux.control_decisions ORDER BY site_id, time DESC;

-- Meter rollup of a site at a resolution ('5m', '30m' or '1h') over [since, until).
CREATE FUNCTION api.meter_rollup(site text, resolution text, since timestamptz, until timestamptz)
RETURNS SETOF api.meter_5m
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
BEGIN
    IF resolution NOT IN ('5m', '30m', '1h') THEN
        RAISE EXCEPTION 'resolution must be 5m, 30m or 1h, not %', resolution
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT * FROM api.%I WHERE site_id = $1 AND bucket >= $2 AND bucket < $3
         ORDER BY device, bucket', 'meter_' || resolution)
    USING site, since, until;
END
$$;

-- Battery rollup of a site at a resolution ('5m', '30m' or '1h') over [since, until).
CREATE FUNCTION api.bess_rollup(site text, resolution text, since timestamptz, until timestamptz)
RETURNS SETOF api.bess_5m
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
BEGIN
    IF resolution NOT IN ('5m', '30m', '1h') THEN
        RAISE EXCEPTION 'resolution must be 5m, 30m or 1h, not %', resolution
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT * FROM api.%I WHERE site_id = $1 AND bucket >= $2 AND bucket < $3
         ORDER BY device, bucket', 'bess_' || resolution)
    USING site, since, until;
END
$$;

REVOKE ALL ON FUNCTION api.meter_rollup(text, text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.bess_rollup(text, text, timestamptz, timestamptz) FROM PUBLIC;

-- The anonymous role (PostgREST's db-anon-role) is granted nothing at all.
GRANT USAGE ON SCHEMA api TO flux_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA api TO flux_reader;
GRANT EXECUTE ON FUNCTION api.meter_rollup(text, text, timestamptz, timestamptz) TO flux_reader;
GRANT EXECUTE ON FUNCTION api.bess_rollup(text, text, timestamptz, timestamptz) TO flux_reader;
