-- Retention: an organization may keep its agent runs and their outputs
-- for a number of days (off by default); a sweep on every replica deletes
-- older finished runs, one organization at a time in that organization's
-- own transaction.
-- (Column and constraint apart: Citus wants every constraint named.)
ALTER TABLE public.organizations ADD COLUMN retention_days integer;
ALTER TABLE public.organizations ADD CONSTRAINT organizations_retention_days_check
    CHECK (retention_days BETWEEN 1 AND 3650);

REVOKE UPDATE ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE (name, settings, require_mfa, retention_days, updated_at)
    ON public.organizations TO app_sme, app_agency;

-- The sweep finds the organizations that keep runs for a limited time:
-- their id, type and retention, nothing else.
GRANT SELECT (id, type, retention_days) ON public.organizations TO app_maint;

SET LOCAL ROLE strata_owner;

CREATE POLICY retention_orgs ON public.organizations FOR SELECT TO app_maint
    USING (retention_days > 0);

RESET ROLE;
