-- The gateway's production login role may read which migrations ran, so
-- that `strata serve` can tell an up-to-date schema (nothing to do, start)
-- from one that needs `strata migrate up` by a role that owns the schema.
-- It reads the table only: it still cannot change it, or anything else.
GRANT SELECT ON TABLE seaql_migrations TO strata_gateway;
