-- A monthly token quota per organization, set by the operator
-- (`strata org set-quota`); NULL leaves the server's default
-- (`--agent-monthly-token-quota`). The runtime roles may change an
-- organization's name and settings, not its quota: their UPDATE grant
-- narrows to those columns.
-- (Column and constraint apart: Citus wants every constraint named.)
ALTER TABLE public.organizations ADD COLUMN monthly_token_quota bigint;
ALTER TABLE public.organizations ADD CONSTRAINT organizations_monthly_token_quota_check
    CHECK (monthly_token_quota >= 0);

REVOKE UPDATE ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE (name, settings, updated_at) ON public.organizations TO app_sme, app_agency;

SET LOCAL ROLE strata_owner;

-- The operator's command acts as strata_owner, which row-level security
-- binds too (FORCE): it names the organization it changes in
-- `app.operator_org_id`, may find that one and set its quota, and writes
-- the audit row saying so.
CREATE FUNCTION app.operator_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT nullif(pg_catalog.current_setting(''app.operator_org_id'', true), '''')::pg_catalog.uuid';
CREATE POLICY operator_find ON public.organizations FOR SELECT TO strata_owner
    USING (id = app.operator_org_id());
CREATE POLICY operator_quota ON public.organizations FOR UPDATE TO strata_owner
    USING (id = app.operator_org_id()) WITH CHECK (id = app.operator_org_id());
CREATE POLICY operator_quota_audit ON public.audit_log FOR INSERT TO strata_owner
    WITH CHECK (target_type = 'OrganizationQuota');

RESET ROLE;
