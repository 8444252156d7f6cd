-- Privileges and Row-Level Security: the last of the three isolation layers.
--
-- Rules kept here (ISOLATION.md):
--   * RLS is ENABLEd and FORCEd on every table of ours in both schemas, so
--     even the owner is subject to it.
--   * Policies read the context only through the STABLE helpers in schema
--     app; no sub-select, no row-argument function, no "OR ... IS NULL".
--   * Runtime roles get exactly the privileges they need and never TRUNCATE,
--     REFERENCES or TRIGGER; app_sme gets nothing in tenant_b and app_agency
--     nothing on SME content.
SET LOCAL ROLE strata_owner;

-- Privileges -----------------------------------------------------------------

GRANT SELECT, INSERT, UPDATE ON public.organizations TO app_sme, app_agency;
GRANT SELECT ON public.users TO app_sme, app_agency;
GRANT SELECT, INSERT, UPDATE ON public.users TO app_auth;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.memberships TO app_sme, app_agency;
GRANT SELECT ON public.memberships TO app_auth;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON public.campaigns, public.brand_guidelines, public.personas, public.agent_outputs
    TO app_sme;
GRANT SELECT, INSERT, UPDATE ON public.api_keys TO app_sme, app_agency;
GRANT SELECT ON public.api_keys TO app_auth;
GRANT UPDATE (last_used_at) ON public.api_keys TO app_auth;
GRANT SELECT, INSERT ON public.audit_log TO app_sme, app_agency;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON tenant_b.workspace_entities, tenant_b.client_assignments, tenant_b.entity_data,
       tenant_b.campaigns, tenant_b.outputs
    TO app_agency;
GRANT SELECT ON tenant_b.client_assignments TO app_auth;

-- Tenant isolation -----------------------------------------------------------

CREATE POLICY sme_org ON public.organizations TO app_sme
    USING (id = app.current_org_id() AND type = 'SME')
    WITH CHECK (id = app.current_org_id() AND type = 'SME');
CREATE POLICY agency_org ON public.organizations TO app_agency
    USING (id = app.current_org_id() AND type = 'AGENCY')
    WITH CHECK (id = app.current_org_id() AND type = 'AGENCY');

CREATE POLICY own_user ON public.users TO app_sme, app_agency, app_auth
    USING (id = app.current_user_id())
    WITH CHECK (id = app.current_user_id());

CREATE POLICY sme_org ON public.memberships TO app_sme
    USING (org_id = app.current_org_id() AND org_type = 'SME')
    WITH CHECK (org_id = app.current_org_id() AND org_type = 'SME');
CREATE POLICY agency_org ON public.memberships TO app_agency
    USING (org_id = app.current_org_id() AND org_type = 'AGENCY')
    WITH CHECK (org_id = app.current_org_id() AND org_type = 'AGENCY');
CREATE POLICY own_memberships ON public.memberships FOR SELECT TO app_auth
    USING (user_id = app.current_user_id());

CREATE POLICY sme_org ON public.campaigns TO app_sme
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY sme_org ON public.brand_guidelines TO app_sme
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY sme_org ON public.personas TO app_sme
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY sme_org ON public.agent_outputs TO app_sme
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

CREATE POLICY tenant_org ON public.api_keys TO app_sme, app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY presented_key ON public.api_keys FOR SELECT TO app_auth
    USING (key_hash = app.current_api_key_hash());
CREATE POLICY presented_key_touch ON public.api_keys FOR UPDATE TO app_auth
    USING (key_hash = app.current_api_key_hash())
    WITH CHECK (key_hash = app.current_api_key_hash());

CREATE POLICY tenant_org ON public.audit_log FOR SELECT TO app_sme, app_agency
    USING (org_id = app.current_org_id());
CREATE POLICY tenant_org_insert ON public.audit_log FOR INSERT TO app_sme, app_agency
    WITH CHECK (org_id = app.current_org_id());

CREATE POLICY agency_org ON tenant_b.workspace_entities TO app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY agency_org ON tenant_b.client_assignments TO app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY own_assignments ON tenant_b.client_assignments FOR SELECT TO app_auth
    USING (user_id = app.current_user_id());
CREATE POLICY agency_org ON tenant_b.entity_data TO app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY agency_org ON tenant_b.campaigns TO app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY agency_org ON tenant_b.outputs TO app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());

-- Client scope (ISOLATION.md 8): RESTRICTIVE, so it narrows whatever the
-- permissive policies allow. A context either grants all clients or lists
-- them; an empty list sees no client-scoped row.
CREATE POLICY client_scope ON tenant_b.workspace_entities AS RESTRICTIVE TO app_agency
    USING (app.all_clients() OR id = ANY (app.current_client_ids()))
    WITH CHECK (app.all_clients() OR id = ANY (app.current_client_ids()));
DO $scope$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['client_assignments', 'entity_data', 'campaigns', 'outputs'] LOOP
        EXECUTE format(
            'CREATE POLICY client_scope ON tenant_b.%I AS RESTRICTIVE TO app_agency '
            'USING (app.all_clients() OR client_id = ANY (app.current_client_ids())) '
            'WITH CHECK (app.all_clients() OR client_id = ANY (app.current_client_ids()))', t);
    END LOOP;
END
$scope$;

-- Read-only contexts (VIEWER, read-only API keys) change nothing, whatever
-- the code above them does.
DO $writes$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'public.organizations', 'public.memberships', 'public.campaigns', 'public.brand_guidelines',
        'public.personas', 'public.agent_outputs', 'public.api_keys', 'public.audit_log',
        'tenant_b.workspace_entities', 'tenant_b.client_assignments', 'tenant_b.entity_data',
        'tenant_b.campaigns', 'tenant_b.outputs'
    ] LOOP
        EXECUTE format('CREATE POLICY writable_insert ON %s AS RESTRICTIVE FOR INSERT TO app_sme, app_agency '
                       'WITH CHECK (app.can_write())', t);
        EXECUTE format('CREATE POLICY writable_update ON %s AS RESTRICTIVE FOR UPDATE TO app_sme, app_agency '
                       'USING (app.can_write()) WITH CHECK (app.can_write())', t);
        EXECUTE format('CREATE POLICY writable_delete ON %s AS RESTRICTIVE FOR DELETE TO app_sme, app_agency '
                       'USING (app.can_write())', t);
    END LOOP;
END
$writes$;

-- Enable and force RLS on every table of ours, found from the catalog so that
-- nothing is forgotten. The migrations bookkeeping table is not ours to
-- protect (it belongs to the migrating login and holds no tenant data).
DO $rls$
DECLARE
    t regclass;
BEGIN
    FOR t IN
        SELECT c.oid::regclass
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
          AND c.relowner = 'strata_owner'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END
$rls$;

RESET ROLE;
