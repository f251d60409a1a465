-- flux.sites_of (0001) answered for any role it was given, and every role could run it
-- (PostgreSQL grants EXECUTE on a new function to PUBLIC): one agent could list another
-- agent's sites, and a reader could read the role-to-site mapping flux.agent_sites hides
-- from it. From here it answers only for the caller, and only flux_agent may run it.
--
-- Who needs it: the agent_own_site row-level security policies (0001) and, on
-- TimescaleDB, the reading tables' site trigger (0002) call sites_of(current_user) with
-- the privileges of the agent running the statement, so flux_agent keeps EXECUTE.
-- flux_reader's policies are USING (true) and flux_anon has no policy: neither calls it.
-- The owner (the migrating administrator) keeps its rights.
--
-- The caller: inside SECURITY DEFINER, current_user is the owner, but session_user is the
-- role that logged in. It may ask for itself, or for a role it is a member of (an
-- authenticator that switches roles, an administrator trying an agent's view with SET
-- ROLE; a superuser is a member of every role). For anyone else the answer is empty.
CREATE OR REPLACE FUNCTION flux.sites_of(p_role name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, flux AS $$
    SELECT coalesce(array_agg(site_id), '{}') FROM flux.agent_sites
    WHERE role_name = p_role AND pg_has_role(session_user, p_role, 'MEMBER')
$$;

REVOKE ALL ON FUNCTION flux.sites_of(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flux.sites_of(name) TO flux_agent;
