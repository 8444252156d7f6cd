SET LOCAL ROLE strata_owner;

DROP POLICY presented_key_touch ON public.api_keys;
DROP POLICY presented_key ON public.api_keys;
CREATE POLICY presented_key ON public.api_keys FOR SELECT TO app_auth
    USING (key_hash = app.current_api_key_hash());
CREATE POLICY presented_key_touch ON public.api_keys FOR UPDATE TO app_auth
    USING (key_hash = app.current_api_key_hash())
    WITH CHECK (key_hash = app.current_api_key_hash());
DROP INDEX public.api_keys_previous_hash_idx;

RESET ROLE;

ALTER TABLE public.api_keys DROP COLUMN previous_valid_until;
ALTER TABLE public.api_keys DROP COLUMN previous_key_hash;
