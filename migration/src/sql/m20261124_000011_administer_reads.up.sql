-- Reading the audit log and the API keys is administration too: only a
-- context that may administer the organization (OWNER or ADMIN users) sees
-- their rows. Until now only the code checked it.
--
-- RESTRICTIVE and FOR SELECT, so they narrow the organization policies for
-- reads only. Rows are still inserted by contexts that may not read them
-- (every mutation writes its audit row): such an INSERT must not read the
-- row back (no RETURNING), since the new row would have to pass these
-- policies. An UPDATE or DELETE that filters on a column skips rows these
-- policies hide. API-key authentication reads `api_keys` as `app_auth`,
-- which these policies do not name.
SET LOCAL ROLE strata_owner;

CREATE POLICY administer_select ON public.audit_log AS RESTRICTIVE FOR SELECT TO app_sme, app_agency
    USING (app.can_administer());
CREATE POLICY administer_select ON public.api_keys AS RESTRICTIVE FOR SELECT TO app_sme, app_agency
    USING (app.can_administer());

RESET ROLE;
