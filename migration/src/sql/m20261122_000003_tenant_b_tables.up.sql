-- The tenant_b schema: agencies, their clients ("workspace entities") and
-- everything per client. Every child row names its client in its key, and
-- references its parent through (org_id, client_id, ...), so a row can never
-- point at another organization's or another client's row.
SET LOCAL ROLE strata_owner;

CREATE TABLE tenant_b.workspace_entities (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    org_type     text NOT NULL DEFAULT 'AGENCY' CHECK (org_type = 'AGENCY'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    archived_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT workspace_entities_org_slug_key UNIQUE (org_id, slug),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE
);
CREATE INDEX workspace_entities_org_created_idx ON tenant_b.workspace_entities (org_id, created_at DESC, id DESC);

-- Which clients an ACCOUNT_MANAGER may see. Removing the membership removes
-- the assignments with it.
CREATE TABLE tenant_b.client_assignments (
    org_id      uuid NOT NULL,
    client_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    org_type    text NOT NULL DEFAULT 'AGENCY' CHECK (org_type = 'AGENCY'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, client_id, user_id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES public.memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX client_assignments_user_idx ON tenant_b.client_assignments (org_id, user_id);
CREATE INDEX client_assignments_user_only_idx ON tenant_b.client_assignments (user_id);

-- Typed per-client data: brand guidelines (at most one set per client) and
-- personas.
CREATE TABLE tenant_b.entity_data (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    client_id   uuid NOT NULL,
    org_type    text NOT NULL DEFAULT 'AGENCY' CHECK (org_type = 'AGENCY'),
    kind        text NOT NULL CHECK (kind IN ('BRAND_GUIDELINES', 'PERSONA')),
    name        text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 200),
    content     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(content) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE
);
CREATE INDEX entity_data_client_kind_idx ON tenant_b.entity_data (org_id, client_id, kind, created_at DESC, id DESC);
CREATE UNIQUE INDEX entity_data_one_guidelines_per_client ON tenant_b.entity_data (org_id, client_id)
    WHERE kind = 'BRAND_GUIDELINES';

CREATE TABLE tenant_b.campaigns (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    client_id   uuid NOT NULL,
    org_type    text NOT NULL DEFAULT 'AGENCY' CHECK (org_type = 'AGENCY'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    objective   text CHECK (objective IS NULL OR length(objective) <= 4000),
    status      text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'ACTIVE', 'PAUSED', 'COMPLETED', 'ARCHIVED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT campaigns_org_client_id_key UNIQUE (org_id, client_id, id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE
);
CREATE INDEX campaigns_org_created_idx ON tenant_b.campaigns (org_id, created_at DESC, id DESC);
CREATE INDEX campaigns_client_created_idx ON tenant_b.campaigns (org_id, client_id, created_at DESC, id DESC);

-- Agent runs and their outputs for agency campaigns.
CREATE TABLE tenant_b.outputs (
    org_id         uuid NOT NULL,
    id             uuid NOT NULL,
    client_id      uuid NOT NULL,
    org_type       text NOT NULL DEFAULT 'AGENCY' CHECK (org_type = 'AGENCY'),
    campaign_id    uuid NOT NULL,
    agent          text NOT NULL,
    status         text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    input          jsonb NOT NULL DEFAULT '{}'::jsonb,
    output         jsonb,
    error          text,
    prompt_tokens      integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    created_by     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    FOREIGN KEY (org_id, client_id, campaign_id) REFERENCES tenant_b.campaigns (org_id, client_id, id) ON DELETE CASCADE
);
CREATE INDEX outputs_campaign_created_idx ON tenant_b.outputs (org_id, campaign_id, created_at DESC, id DESC);
CREATE INDEX outputs_client_idx ON tenant_b.outputs (org_id, client_id);

-- API keys may be scoped to one client of an agency.
ALTER TABLE public.api_keys
    ADD CONSTRAINT api_keys_client_fkey FOREIGN KEY (org_id, client_id)
    REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE;

RESET ROLE;
