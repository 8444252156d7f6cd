SET LOCAL ROLE strata_owner;

CREATE OR REPLACE FUNCTION app.current_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION app.current_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.client_ids', true), '')::uuid[], '{}'::uuid[]) $$;

CREATE OR REPLACE FUNCTION app.all_clients() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.all_clients', true), '')::boolean, false) $$;

CREATE OR REPLACE FUNCTION app.can_write() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.can_write', true), '')::boolean, false) $$;

CREATE OR REPLACE FUNCTION app.current_api_key_hash() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.api_key_hash', true), '') $$;

RESET ROLE;
