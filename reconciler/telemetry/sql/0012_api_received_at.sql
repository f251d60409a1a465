-- The api views of the reading tables show received_at (0011): 0003 made them with
-- `SELECT *`, which PostgreSQL expands once, when a view is made, so the column added
-- later was not in them. CREATE OR REPLACE may add columns at the end of a view.

CREATE OR REPLACE VIEW api.bess_readings WITH (security_invoker = true) AS
    SELECT * FROM flux.bess_readings;
CREATE OR REPLACE VIEW api.meter_readings WITH (security_invoker = true) AS
    SELECT * FROM flux.meter_readings;
