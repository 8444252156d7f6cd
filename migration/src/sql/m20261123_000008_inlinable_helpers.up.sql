-- The context helpers become inlinable. A SQL function with a SET clause
-- (it had `SET search_path = pg_catalog`) is never inlined: a policy calling
-- it ran a whole function call per row, which cost most of what RLS cost.
-- Without the clause, the planner puts the body into the query and the
-- check is a setting lookup and a cast. The body no longer depends on the
-- search_path: every name in it is schema-qualified (nullif and coalesce are
-- syntax, not functions). Same signatures: grants are kept.
SET LOCAL ROLE strata_owner;

CREATE OR REPLACE FUNCTION app.current_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(pg_catalog.current_setting('app.org_id', true), '')::pg_catalog.uuid $$;

CREATE OR REPLACE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(pg_catalog.current_setting('app.user_id', true), '')::pg_catalog.uuid $$;

CREATE OR REPLACE FUNCTION app.current_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('app.client_ids', true), '')::pg_catalog.uuid[], '{}'::pg_catalog.uuid[]) $$;

CREATE OR REPLACE FUNCTION app.all_clients() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('app.all_clients', true), '')::pg_catalog.bool, false) $$;

CREATE OR REPLACE FUNCTION app.can_write() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('app.can_write', true), '')::pg_catalog.bool, false) $$;

CREATE OR REPLACE FUNCTION app.current_api_key_hash() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(pg_catalog.current_setting('app.api_key_hash', true), '') $$;

RESET ROLE;
