ALTER TABLE public.api_keys DROP CONSTRAINT api_keys_rate_limit_check;
ALTER TABLE public.api_keys DROP COLUMN rate_limit_per_minute;
ALTER TABLE public.api_keys DROP CONSTRAINT api_keys_client_ids_check;
ALTER TABLE public.api_keys DROP COLUMN client_ids;
