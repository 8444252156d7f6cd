-- The public schema: identities shared by both tenant types, and SME content.
--
-- Conventions (ISOLATION.md 9-11): every tenant table's key starts with
-- org_id; every foreign key to a tenant-owned parent includes org_id; typed
-- tables carry org_type pinned by a CHECK and a composite foreign key to
-- organizations (id, type), so an agency's row cannot land in an SME table
-- whatever the code does.
SET LOCAL ROLE strata_owner;

CREATE TABLE public.organizations (
    id          uuid PRIMARY KEY,
    type        text NOT NULL CHECK (type IN ('SME', 'AGENCY')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    -- White-label branding and other organization settings.
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_slug_key UNIQUE (slug),
    CONSTRAINT organizations_id_type_key UNIQUE (id, type)
);

-- Users are global identities (one person may belong to several
-- organizations); a runtime role only ever sees its own user row.
CREATE TABLE public.users (
    id            uuid PRIMARY KEY,
    email         text CHECK (email IS NULL OR length(email) <= 320),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.memberships (
    org_id      uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    -- Denormalised from organizations and held true by the composite key,
    -- so resolving a credential never needs to read organizations.
    org_type    text NOT NULL CHECK (org_type IN ('SME', 'AGENCY')),
    role        text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'STRATEGIST', 'ACCOUNT_MANAGER', 'VIEWER')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE
);
CREATE INDEX memberships_user_idx ON public.memberships (user_id);

CREATE TABLE public.campaigns (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    org_type    text NOT NULL DEFAULT 'SME' CHECK (org_type = 'SME'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    objective   text CHECK (objective IS NULL OR length(objective) <= 4000),
    status      text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'ACTIVE', 'PAUSED', 'COMPLETED', 'ARCHIVED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE
);
CREATE INDEX campaigns_org_created_idx ON public.campaigns (org_id, created_at DESC, id DESC);

-- One set of brand guidelines per SME organization.
CREATE TABLE public.brand_guidelines (
    org_id      uuid NOT NULL PRIMARY KEY,
    org_type    text NOT NULL DEFAULT 'SME' CHECK (org_type = 'SME'),
    content     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(content) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE
);

CREATE TABLE public.personas (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    org_type     text NOT NULL DEFAULT 'SME' CHECK (org_type = 'SME'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text CHECK (description IS NULL OR length(description) <= 4000),
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, org_type) REFERENCES public.organizations (id, type) ON DELETE CASCADE
);
CREATE INDEX personas_org_created_idx ON public.personas (org_id, created_at DESC, id DESC);

-- Agent runs and their outputs for SME campaigns.
CREATE TABLE public.agent_outputs (
    org_id         uuid NOT NULL,
    id             uuid NOT NULL,
    org_type       text NOT NULL DEFAULT 'SME' CHECK (org_type = 'SME'),
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
    FOREIGN KEY (org_id, campaign_id) REFERENCES public.campaigns (org_id, id) ON DELETE CASCADE
);
CREATE INDEX agent_outputs_campaign_created_idx ON public.agent_outputs (org_id, campaign_id, created_at DESC, id DESC);

-- API keys of both tenant types. The secret is never stored: only a SHA-256
-- hash, and a short prefix to recognise the key by.
CREATE TABLE public.api_keys (
    org_id        uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    client_id     uuid,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix        text NOT NULL,
    key_hash      text NOT NULL,
    read_only     boolean NOT NULL DEFAULT false,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT api_keys_org_hash_key UNIQUE (org_id, key_hash)
);
CREATE INDEX api_keys_hash_idx ON public.api_keys (key_hash);

-- One row per successful mutation, written in the mutation's transaction.
CREATE TABLE public.audit_log (
    org_id            uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    client_id         uuid,
    actor_user_id     uuid,
    actor_api_key_id  uuid,
    operation         text NOT NULL,
    target_type       text NOT NULL,
    target_id         uuid,
    request_id        text,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_org_created_idx ON public.audit_log (org_id, created_at DESC, id DESC);

RESET ROLE;
