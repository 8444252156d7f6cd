-- Roles are cluster-wide and may serve other databases of the cluster, so
-- they stay; everything this database granted them goes.
DROP SCHEMA tenant_b CASCADE;
DROP SCHEMA app CASCADE;
REVOKE CREATE ON SCHEMA public FROM strata_owner;
