SET LOCAL ROLE strata_owner;

DROP POLICY operator_quota_audit ON public.audit_log;
DROP POLICY operator_quota ON public.organizations;
DROP POLICY operator_find ON public.organizations;
DROP FUNCTION app.operator_org_id();

RESET ROLE;

REVOKE UPDATE (name, settings, updated_at) ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE ON public.organizations TO app_sme, app_agency;

ALTER TABLE public.organizations DROP COLUMN monthly_token_quota;
