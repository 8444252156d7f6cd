SET LOCAL ROLE strata_owner;

DO $undo$
DECLARE
    p record;
    t regclass;
BEGIN
    FOR p IN
        SELECT schemaname, tablename, policyname FROM pg_policies
        WHERE schemaname IN ('public', 'tenant_b')
    LOOP
        EXECUTE format('DROP POLICY %I ON %I.%I', p.policyname, p.schemaname, p.tablename);
    END LOOP;
    FOR t IN
        SELECT c.oid::regclass
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
          AND c.relowner = 'strata_owner'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', t);
        EXECUTE format('REVOKE ALL ON %s FROM app_sme, app_agency, app_auth', t);
    END LOOP;
END
$undo$;

RESET ROLE;
