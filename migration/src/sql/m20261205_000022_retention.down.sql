SET LOCAL ROLE strata_owner;

DROP POLICY retention_orgs ON public.organizations;

RESET ROLE;

REVOKE SELECT ON public.organizations FROM app_maint;
REVOKE UPDATE ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE (name, settings, require_mfa, updated_at) ON public.organizations TO app_sme, app_agency;

ALTER TABLE public.organizations DROP CONSTRAINT organizations_retention_days_check;
ALTER TABLE public.organizations DROP COLUMN retention_days;
