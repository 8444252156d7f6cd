SET LOCAL ROLE strata_owner;

DROP POLICY administer_select ON public.api_keys;
DROP POLICY administer_select ON public.audit_log;

RESET ROLE;
