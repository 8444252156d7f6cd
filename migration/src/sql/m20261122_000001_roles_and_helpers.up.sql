-- Roles, schemas and the tenant-context helpers.
--
-- Roles are cluster-wide, so creating them tolerates their existence (several
-- databases of one cluster share them, and two may be migrated at once).
--
--   strata_owner   NOLOGIN; owns every schema object. Subject to RLS because
--                  every tenant table is FORCE ROW LEVEL SECURITY.
--   app_sme        runtime role for SME requests: nothing in tenant_b.
--   app_agency     runtime role for agency requests: no write on SME tables.
--   app_auth       runtime role used while a credential is being resolved
--                  into a tenant context: reads only the caller's own user,
--                  memberships, client assignments and API key.
--   strata_gateway what the gateway should log in as in production (an
--                  operator adds LOGIN and a password). NOINHERIT: it holds
--                  no privilege of its own and can only switch to the
--                  runtime roles.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['strata_owner', 'app_sme', 'app_agency', 'app_auth', 'strata_gateway'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
    ALTER ROLE strata_gateway NOINHERIT;
    FOREACH r IN ARRAY ARRAY['app_sme', 'app_agency', 'app_auth'] LOOP
        BEGIN
            EXECUTE format('GRANT %I TO strata_gateway', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$roles$;

CREATE SCHEMA app AUTHORIZATION strata_owner;
CREATE SCHEMA tenant_b AUTHORIZATION strata_owner;
GRANT CREATE ON SCHEMA public TO strata_owner;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
REVOKE ALL ON SCHEMA tenant_b FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO app_sme, app_agency, app_auth, strata_gateway;
GRANT USAGE ON SCHEMA tenant_b TO app_agency, app_auth;

SET LOCAL ROLE strata_owner;

-- Context helpers. `nullif` sits inside the cast: once a setting has been
-- touched on a connection, current_setting(..., true) returns '' rather than
-- NULL, and ''::uuid would raise. A missing context is NULL, which matches no
-- row (org_id = NULL is never true) and fails every WITH CHECK.
-- STABLE lets the planner evaluate them once per query, not once per row.
CREATE FUNCTION app.current_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE FUNCTION app.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

-- The clients an agency context may see; empty when unset.
CREATE FUNCTION app.current_client_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.client_ids', true), '')::uuid[], '{}'::uuid[]) $$;

-- True only when the context grants every client of the organization.
CREATE FUNCTION app.all_clients() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.all_clients', true), '')::boolean, false) $$;

-- True only when the context may change content (not a VIEWER or read-only key).
CREATE FUNCTION app.can_write() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT coalesce(nullif(current_setting('app.can_write', true), '')::boolean, false) $$;

-- The hash of the API key being authenticated (hex), for the app_auth role.
CREATE FUNCTION app.current_api_key_hash() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
    AS $$ SELECT nullif(current_setting('app.api_key_hash', true), '') $$;

-- The first statement of every request transaction. Everything it sets is
-- transaction-local (SET LOCAL), so nothing survives COMMIT or ROLLBACK into
-- the next use of a pooled connection. SET LOCAL rather than set_config()
-- because Citus forwards the former to workers. Not SECURITY DEFINER: it runs
-- as the login role, which must be a member of the runtime role it switches
-- to.
CREATE FUNCTION app.begin_request(
    p_role text,
    p_org_id uuid,
    p_user_id uuid,
    p_client_ids uuid[],
    p_all_clients boolean,
    p_can_write boolean,
    p_api_key_hash text,
    p_request_id text
) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog
AS $$
BEGIN
    IF p_role NOT IN ('app_sme', 'app_agency', 'app_auth') THEN
        RAISE EXCEPTION 'unknown runtime role' USING ERRCODE = '22023';
    END IF;
    EXECUTE format('SET LOCAL app.org_id = %L', coalesce(p_org_id::text, ''));
    EXECUTE format('SET LOCAL app.user_id = %L', coalesce(p_user_id::text, ''));
    EXECUTE format('SET LOCAL app.client_ids = %L', coalesce(p_client_ids, '{}'::uuid[])::text);
    EXECUTE format('SET LOCAL app.all_clients = %L', coalesce(p_all_clients, false)::text);
    EXECUTE format('SET LOCAL app.can_write = %L', coalesce(p_can_write, false)::text);
    EXECUTE format('SET LOCAL app.api_key_hash = %L', coalesce(p_api_key_hash, ''));
    EXECUTE format('SET LOCAL app.request_id = %L', coalesce(p_request_id, ''));
    EXECUTE format('SET LOCAL ROLE %I', p_role);
END
$$;

REVOKE ALL ON FUNCTION app.current_org_id(), app.current_user_id(), app.current_client_ids(),
    app.all_clients(), app.can_write(), app.current_api_key_hash() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_org_id(), app.current_user_id(), app.current_client_ids(),
    app.all_clients(), app.can_write(), app.current_api_key_hash()
    TO app_sme, app_agency, app_auth;
REVOKE ALL ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text) TO strata_gateway;

RESET ROLE;
