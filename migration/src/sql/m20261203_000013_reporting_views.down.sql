-- The roles stay (roles are cluster-wide and may serve other databases of the
-- cluster, as those of the earlier migrations do), and so do reporting
-- logins already created: without the table that maps them, they read
-- nothing here. Everything this database granted the roles goes.
DROP SCHEMA reporting CASCADE;

SET LOCAL ROLE strata_owner;

DROP POLICY reporting_login_audit ON public.audit_log;

DO $policies$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'public.campaigns', 'public.agent_outputs', 'public.brand_guidelines', 'public.personas',
        'tenant_b.campaigns', 'tenant_b.outputs', 'tenant_b.entity_data', 'tenant_b.workspace_entities'
    ] LOOP
        EXECUTE format('DROP POLICY reporting_org ON %s', t);
        EXECUTE format('REVOKE ALL ON %s FROM app_reporting', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY[
        'tenant_b.campaigns', 'tenant_b.outputs', 'tenant_b.entity_data', 'tenant_b.workspace_entities'
    ] LOOP
        EXECUTE format('DROP POLICY reporting_client ON %s', t);
    END LOOP;
END
$policies$;

DROP FUNCTION app.reporting_org_id();
DROP FUNCTION app.reporting_client_id();
DROP TABLE app.reporting_logins;
REVOKE USAGE ON SCHEMA app, tenant_b FROM app_reporting;

RESET ROLE;
