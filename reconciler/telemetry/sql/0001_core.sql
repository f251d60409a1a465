-- Flux core schema: sites, devices, readings, decisions, market data, revisions, status.
--
-- Units: kW, kWh, Hz, V, A, kvar, kVA; every instant is timestamptz (stored UTC).
-- Signs (docs/domain.md): site/meter power + import, battery power + discharge.
-- Every telemetry table has a primary key that includes the time, so a re-sent row
-- (an upload retried after a crash) conflicts and is skipped by ON CONFLICT DO NOTHING.
-- Readings have no index but that key: every query (API, rollups, gaps) is by site and
-- device, and each extra index costs ingest throughput.

CREATE SCHEMA IF NOT EXISTS flux;

-- Roles are cluster-wide: create them idempotently and tolerate a concurrent creator
-- (two test databases migrating at once on one server).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['flux_agent', 'flux_reader', 'flux_anon'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

CREATE TABLE flux.sites (
    site_id     text PRIMARY KEY,
    name        text,
    timezone    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE flux.devices (
    site_id     text NOT NULL,
    device      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('bess', 'meter')),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device)
);

-- Which login role uploads for which site. Row-level security keys on this mapping and
-- on current_user: a role name cannot be forged by the client, a session setting could.
CREATE TABLE flux.agent_sites (
    role_name   name NOT NULL,
    site_id     text NOT NULL,
    PRIMARY KEY (role_name, site_id)
);

-- One row per report of a revision's state (staged, applied, quarantined, ...).
CREATE TABLE flux.config_revisions (
    time        timestamptz NOT NULL,
    site_id     text NOT NULL,
    sha         text NOT NULL,
    state       text NOT NULL,
    conditions  jsonb NOT NULL DEFAULT '{}'::jsonb,
    errors      jsonb NOT NULL DEFAULT '[]'::jsonb,
    message     text NOT NULL DEFAULT '',
    PRIMARY KEY (site_id, sha, state, time)
);

-- Agent heartbeats: status conditions as JSON.
CREATE TABLE flux.agent_status (
    time        timestamptz NOT NULL,
    site_id     text NOT NULL,
    conditions  jsonb NOT NULL,
    PRIMARY KEY (site_id, time)
);

CREATE TABLE flux.bess_readings (
    time              timestamptz NOT NULL,
    site_id           text NOT NULL,
    device            text NOT NULL,
    soe_kwh           double precision NOT NULL,
    target_power_kw   double precision NOT NULL,   -- + discharge
    actual_power_kw   double precision,            -- + discharge; NULL when not measured
    available_blocks  integer NOT NULL,
    command_source    integer NOT NULL,
    PRIMARY KEY (site_id, device, time)
);

-- Energy deltas are derived at ingest from consecutive counter values of one device
-- (a drop is a counter reset: the new value is the delta). They are stored so rollups are
-- plain sums: TimescaleDB continuous aggregates cannot use window functions.
CREATE TABLE flux.meter_readings (
    time                     timestamptz NOT NULL,
    site_id                  text NOT NULL,
    device                   text NOT NULL,
    power_kw                 double precision NOT NULL,   -- + import
    frequency_hz             double precision NOT NULL,
    voltage_v                double precision NOT NULL,
    current_a                double precision NOT NULL,
    current_b                double precision NOT NULL,
    current_c                double precision NOT NULL,
    current_avg              double precision NOT NULL,
    power_a_kw               double precision NOT NULL,
    power_b_kw               double precision NOT NULL,
    power_c_kw               double precision NOT NULL,
    reactive_kvar            double precision NOT NULL,
    apparent_kva             double precision NOT NULL,
    power_factor             double precision NOT NULL,
    energy_import_kwh        double precision NOT NULL,   -- cumulative counter
    energy_export_kwh        double precision NOT NULL,   -- cumulative counter
    energy_import_delta_kwh  double precision NOT NULL DEFAULT 0,
    energy_export_delta_kwh  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, device, time)
);

CREATE TABLE flux.control_decisions (
    time                     timestamptz NOT NULL,
    site_id                  text NOT NULL,
    revision_sha             text,
    target_kw                double precision NOT NULL,   -- + discharge
    reason                   text NOT NULL,
    safe_stop                boolean NOT NULL,
    winner                   text,
    components               jsonb NOT NULL,              -- every active mode's proposal
    effective                text[] NOT NULL,
    bound_by                 text[] NOT NULL,
    site_power_kw            double precision,
    predicted_site_power_kw  double precision,
    soe_kwh                  double precision,
    PRIMARY KEY (site_id, time)
);

-- Market values as fetched: a later settlement run revises a value, so each fetch is kept.
CREATE TABLE flux.market_data (
    time               timestamptz NOT NULL,   -- start of the settlement period
    site_id            text NOT NULL,          -- the agent that fetched it
    type               text NOT NULL,          -- e.g. imbalance_price (p/kWh), niv (MWh)
    settlement_date    date NOT NULL,
    settlement_period  integer NOT NULL,
    value              double precision NOT NULL,
    source             text NOT NULL,
    fetched_at         timestamptz NOT NULL,
    PRIMARY KEY (site_id, type, source, time, fetched_at)
);

-- ----------------------------------------------------------------------------- security

-- The sites a role may write. SECURITY DEFINER so an agent need not read the mapping
-- table; the policies pass current_user (inside the function it would be the owner).
CREATE FUNCTION flux.sites_of(p_role name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, flux AS $$
    SELECT coalesce(array_agg(site_id), '{}') FROM flux.agent_sites WHERE role_name = p_role
$$;

-- Give an existing login role the right to upload for a site (run by an administrator).
CREATE FUNCTION flux.register_agent(p_role name, p_site text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flux.agent_sites (role_name, site_id) VALUES (p_role, p_site)
    ON CONFLICT DO NOTHING;
    EXECUTE format('GRANT flux_agent TO %I', p_role);
END
$$;

REVOKE ALL ON FUNCTION flux.register_agent(name, text) FROM PUBLIC;

GRANT USAGE ON SCHEMA flux TO flux_agent, flux_reader;
-- Created by the migrator before this file; clients check the version they talk to.
GRANT SELECT ON flux.schema_migrations TO flux_agent, flux_reader;
GRANT SELECT, INSERT ON
    flux.sites, flux.devices, flux.config_revisions, flux.agent_status, flux.bess_readings,
    flux.meter_readings, flux.control_decisions, flux.market_data
    TO flux_agent;
-- Only the derived columns: late rows re-derive their successor's delta.
GRANT UPDATE (energy_import_delta_kwh, energy_export_delta_kwh) ON flux.meter_readings
    TO flux_agent;
GRANT SELECT ON ALL TABLES IN SCHEMA flux TO flux_reader;
REVOKE ALL ON flux.agent_sites FROM flux_reader;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sites', 'devices', 'config_revisions', 'agent_status',
                             'bess_readings', 'meter_readings', 'control_decisions',
                             'market_data'] LOOP
        EXECUTE format('ALTER TABLE flux.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY agent_own_site ON flux.%I TO flux_agent '
            'USING (site_id = ANY (flux.sites_of(current_user))) '
            'WITH CHECK (site_id = ANY (flux.sites_of(current_user)))', t);
        EXECUTE format('CREATE POLICY reader_all ON flux.%I FOR SELECT TO flux_reader USING (true)', t);
    END LOOP;
END
$$;
