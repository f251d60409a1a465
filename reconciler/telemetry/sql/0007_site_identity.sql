-- Each device's role and each site's name and timezone, from the revision in control.
--
-- Dashboards found the grid meter by its name (`site`); most sites call it `boundary`, so
-- the battery meter was shown as site power. The role (grid, battery, solar, feeder, load
-- for meters; null for the battery) is what the site file says the meter measures.
-- flux.sites.name and timezone were never filled: a dashboard needs the zone of the
-- site's DUoS bands. Agents upsert both (row-level security keeps them to their sites).

ALTER TABLE flux.devices ADD COLUMN IF NOT EXISTS role text;
-- What the dashboards' KPIs judge against: the site file's limits (kW, positive) and the
-- battery's nameplate energy (kWh, for equivalent cycles).
ALTER TABLE flux.sites
    ADD COLUMN IF NOT EXISTS site_import_kw double precision,
    ADD COLUMN IF NOT EXISTS site_export_kw double precision,
    ADD COLUMN IF NOT EXISTS nameplate_energy_kwh double precision;

GRANT UPDATE (name, timezone, site_import_kw, site_export_kw, nameplate_energy_kwh)
    ON flux.sites TO flux_agent;
GRANT UPDATE (role) ON flux.devices TO flux_agent;

CREATE OR REPLACE VIEW api.sites WITH (security_invoker = true) AS
    SELECT site_id, name, timezone, created_at, site_import_kw, site_export_kw,
           nameplate_energy_kwh
    FROM flux.sites;
CREATE OR REPLACE VIEW api.devices WITH (security_invoker = true) AS
    SELECT site_id, device, kind, first_seen, role FROM flux.devices;
