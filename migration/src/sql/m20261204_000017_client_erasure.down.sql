SET LOCAL ROLE strata_owner;

DROP POLICY erase_client_rows ON public.audit_log;

RESET ROLE;

REVOKE DELETE ON public.organizations FROM app_sme, app_agency;
REVOKE DELETE ON public.api_keys FROM app_agency;
REVOKE DELETE ON public.audit_log FROM app_agency;
