-- API keys carry their organization's type, like memberships do: resolving a
-- key (as app_auth, which cannot read organizations) must pick the runtime
-- role without reading organizations. The composite foreign key keeps the
-- copy true. Also the list index every tenant table's pages have.
SET LOCAL ROLE strata_owner;

ALTER TABLE public.api_keys ADD COLUMN org_type text;

-- The owner is subject to RLS only because the table is FORCEd; lift that for
-- the backfill. Nothing outside this transaction sees the gap.
ALTER TABLE public.api_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.organizations NO FORCE ROW LEVEL SECURITY;
UPDATE public.api_keys k SET org_type = o.type FROM public.organizations o WHERE o.id = k.org_id;
ALTER TABLE public.organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE public.api_keys FORCE ROW LEVEL SECURITY;

ALTER TABLE public.api_keys
    ALTER COLUMN org_type SET NOT NULL,
    ADD CONSTRAINT api_keys_org_type_check CHECK (org_type IN ('SME', 'AGENCY')),
    ADD CONSTRAINT api_keys_org_type_fkey FOREIGN KEY (org_id, org_type)
        REFERENCES public.organizations (id, type) ON DELETE CASCADE;

CREATE INDEX api_keys_org_created_idx ON public.api_keys (org_id, created_at DESC, id DESC);

RESET ROLE;
