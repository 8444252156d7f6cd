-- Rotating an API key (rotateApiKey): a new secret replaces the key's hash,
-- and the previous hash stays valid until `previous_valid_until`, so that
-- the systems using the key can move to the new secret without a gap.
ALTER TABLE public.api_keys ADD COLUMN previous_key_hash text;
ALTER TABLE public.api_keys ADD COLUMN previous_valid_until timestamptz;

SET LOCAL ROLE strata_owner;

-- Found by either hash while a credential is being resolved, as the
-- current one is.
CREATE INDEX api_keys_previous_hash_idx ON public.api_keys (previous_key_hash)
    WHERE previous_key_hash IS NOT NULL;

DROP POLICY presented_key ON public.api_keys;
DROP POLICY presented_key_touch ON public.api_keys;
CREATE POLICY presented_key ON public.api_keys FOR SELECT TO app_auth
    USING (key_hash = app.current_api_key_hash()
           OR previous_key_hash = app.current_api_key_hash());
CREATE POLICY presented_key_touch ON public.api_keys FOR UPDATE TO app_auth
    USING (key_hash = app.current_api_key_hash()
           OR previous_key_hash = app.current_api_key_hash())
    WITH CHECK (key_hash = app.current_api_key_hash()
                OR previous_key_hash = app.current_api_key_hash());

RESET ROLE;
