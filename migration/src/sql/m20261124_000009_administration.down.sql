SET LOCAL ROLE strata_owner;

DROP INDEX public.memberships_org_created_idx;

DO $administer$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'public.organizations', 'public.memberships', 'public.api_keys',
        'tenant_b.workspace_entities', 'tenant_b.client_assignments'
    ] LOOP
        EXECUTE format('DROP POLICY administer_insert ON %s', t);
        EXECUTE format('DROP POLICY administer_update ON %s', t);
        EXECUTE format('DROP POLICY administer_delete ON %s', t);
    END LOOP;
END
$administer$;

DROP FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text, boolean);
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
REVOKE ALL ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, uuid, uuid, uuid[], boolean, boolean, text, text) TO strata_gateway;

DROP FUNCTION app.can_administer();

RESET ROLE;
