SET LOCAL ROLE strata_owner;

DROP POLICY writable_insert ON public.token_usage;
DROP POLICY writable_update ON public.token_usage;
DROP POLICY writable_delete ON public.token_usage;

RESET ROLE;
