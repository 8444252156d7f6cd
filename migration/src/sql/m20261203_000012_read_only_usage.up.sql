-- Read-only contexts (VIEWER, read-only API keys) change nothing, the
-- monthly token usage included: until now only the code kept them from
-- resetting their organization's quota.
SET LOCAL ROLE strata_owner;

CREATE POLICY writable_insert ON public.token_usage AS RESTRICTIVE FOR INSERT TO app_sme, app_agency
    WITH CHECK (app.can_write());
CREATE POLICY writable_update ON public.token_usage AS RESTRICTIVE FOR UPDATE TO app_sme, app_agency
    USING (app.can_write()) WITH CHECK (app.can_write());
CREATE POLICY writable_delete ON public.token_usage AS RESTRICTIVE FOR DELETE TO app_sme, app_agency
    USING (app.can_write());

RESET ROLE;
