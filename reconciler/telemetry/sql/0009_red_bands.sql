-- Each site's DUoS red-band windows, from the revision in control, and api.red_bands():
-- the band's occurrences in a time range, so a dashboard judges peak import inside them.
--
-- The bands are local (16:00-19:00 on weekdays, say) and follow the site file's rules: a
-- window whose end is before its start runs past midnight, and its days and dates apply
-- to the day it starts. Stored as the agent sends them (reconciler/agent/telemetry.py,
-- red_bands): [{"days": [1..7 ISO weekdays], "from", "to": dates or null, "start",
-- "end": "HH:MM"}]. Null until an agent that knows red bands reports the site.

ALTER TABLE flux.sites ADD COLUMN IF NOT EXISTS red_bands jsonb;
GRANT UPDATE (red_bands) ON flux.sites TO flux_agent;

CREATE OR REPLACE VIEW api.sites WITH (security_invoker = true) AS
    SELECT site_id, name, timezone, created_at, site_import_kw, site_export_kw,
           nameplate_energy_kwh, red_bands
    FROM flux.sites;

-- The occurrences [starts, ends) of the site's red bands that overlap [since, until).
-- SECURITY INVOKER: the caller sees the bands of the sites its role may read.
CREATE OR REPLACE FUNCTION api.red_bands(site text, since timestamptz, until timestamptz)
RETURNS TABLE (starts timestamptz, ends timestamptz)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT w.starts, w.ends
    FROM flux.sites s
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(s.red_bands) = 'array' THEN s.red_bands ELSE '[]' END) b
    -- From the local day before `since` (a band may start yesterday and run past
    -- midnight) to the local day of `until`.
    CROSS JOIN LATERAL generate_series(
        ((since AT TIME ZONE s.timezone)::date - 1)::timestamp,
        (until AT TIME ZONE s.timezone)::date::timestamp, interval '1 day') d(day)
    CROSS JOIN LATERAL (SELECT
        (d.day + (b->>'start')::interval) AT TIME ZONE s.timezone AS starts,
        (d.day + (b->>'end')::interval
               + CASE WHEN (b->>'end')::interval < (b->>'start')::interval
                      THEN interval '1 day' ELSE interval '0' END) AT TIME ZONE s.timezone
            AS ends) w
    WHERE s.site_id = red_bands.site
      AND (b->'days') @> to_jsonb(extract(isodow FROM d.day)::int)
      AND (b->>'from' IS NULL OR d.day::date >= (b->>'from')::date)
      AND (b->>'to' IS NULL OR d.day::date <= (b->>'to')::date)
      AND w.ends > since AND w.starts < until
    ORDER BY w.starts
$$;
REVOKE ALL ON FUNCTION api.red_bands(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.red_bands(text, timestamptz, timestamptz) TO flux_reader;
GRANT SELECT ON api.sites TO flux_reader;
