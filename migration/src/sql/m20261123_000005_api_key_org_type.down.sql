SET LOCAL ROLE strata_owner;

DROP INDEX public.api_keys_org_created_idx;
ALTER TABLE public.api_keys
    DROP CONSTRAINT api_keys_org_type_fkey,
    DROP CONSTRAINT api_keys_org_type_check,
    DROP COLUMN org_type;

RESET ROLE;
