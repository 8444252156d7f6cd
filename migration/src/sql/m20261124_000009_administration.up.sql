-- Administration is backed by the database, like writing is: memberships,
-- client assignments, clients (tenant_b.workspace_entities), the
-- organization row (name and settings) and API keys change only in a
-- context that may administer the organization (OWNER or ADMIN users, and
-- the creator of a new organization; never an API key). Until now only the
-- code checked it.
--
-- Also the index of the members list's pages: keyset pagination on
-- (created_at, id) within an organization, like every other list.
SET LOCAL ROLE strata_owner;

-- True only when the context may administer the organization. Inlinable
-- like the other helpers: STABLE SQL, no SET clause, schema-qualified body.
CREATE FUNCTION app.can_administer() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('app.can_administer', true), '')::pg_catalog.bool, false) $$;

REVOKE ALL ON FUNCTION app.can_administer() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.can_administer() TO app_sme, app_agency, app_auth;

-- begin_request sets the new setting too. The new parameter comes last and
-- defaults to false, so a call with the eight parameters it had still works
-- (and cannot administer).
DROP FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text);
CREATE FUNCTION app.begin_request(
    p_role text,
    p_org_id uuid,
    p_user_id uuid,
    p_client_ids uuid[],
    p_all_clients boolean,
    p_can_write boolean,
    p_api_key_hash text,
    p_request_id text,
    p_can_administer boolean DEFAULT false
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
    EXECUTE format('SET LOCAL app.can_administer = %L', coalesce(p_can_administer, false)::text);
    EXECUTE format('SET LOCAL app.api_key_hash = %L', coalesce(p_api_key_hash, ''));
    EXECUTE format('SET LOCAL app.request_id = %L', coalesce(p_request_id, ''));
    EXECUTE format('SET LOCAL ROLE %I', p_role);
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text, boolean) TO strata_gateway;

-- RESTRICTIVE, so they narrow the organization and writable policies. The
-- UPDATE policies have no USING clause: a row the context sees but may not
-- change fails the statement (42501) instead of being skipped without a
-- word. A DELETE can only skip (a policy has nothing else to say about it).
DO $administer$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'public.organizations', 'public.memberships', 'public.api_keys',
        'tenant_b.workspace_entities', 'tenant_b.client_assignments'
    ] LOOP
        EXECUTE format('CREATE POLICY administer_insert ON %s AS RESTRICTIVE FOR INSERT TO app_sme, app_agency '
                       'WITH CHECK (app.can_administer())', t);
        EXECUTE format('CREATE POLICY administer_update ON %s AS RESTRICTIVE FOR UPDATE TO app_sme, app_agency '
                       'WITH CHECK (app.can_administer())', t);
        EXECUTE format('CREATE POLICY administer_delete ON %s AS RESTRICTIVE FOR DELETE TO app_sme, app_agency '
                       'USING (app.can_administer())', t);
    END LOOP;
END
$administer$;

CREATE INDEX memberships_org_created_idx ON public.memberships (org_id, created_at, user_id);

RESET ROLE;
