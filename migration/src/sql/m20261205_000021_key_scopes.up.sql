-- API keys limited to several clients, and a rate of their own. `client_id`
-- stays the first of `client_ids` (on plain PostgreSQL its foreign key
-- still ties a key to an existing client).
ALTER TABLE public.api_keys ADD COLUMN client_ids uuid[] NOT NULL DEFAULT '{}';
UPDATE public.api_keys SET client_ids = ARRAY[client_id] WHERE client_id IS NOT NULL;
ALTER TABLE public.api_keys ADD CONSTRAINT api_keys_client_ids_check
    CHECK (client_id IS NOT DISTINCT FROM client_ids[1]);
-- Requests a minute the key's own bucket allows, instead of the server's
-- per-key rate; the organization's bucket still applies.
ALTER TABLE public.api_keys ADD COLUMN rate_limit_per_minute integer;
ALTER TABLE public.api_keys ADD CONSTRAINT api_keys_rate_limit_check
    CHECK (rate_limit_per_minute BETWEEN 1 AND 1000000);
