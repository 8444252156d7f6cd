-- Reporting: one read view per resource over both schemas, for SQL and BI
-- readers, and the tenant context of the logins that read them.
--
-- Views. Schema `reporting` holds campaigns, agent_runs, agent_outputs,
-- brand_guidelines, personas, clients and usage. Each is a UNION ALL of the
-- SME table in `public` and the agency table in `tenant_b` (clients exist in
-- `tenant_b` only) with org_id, client_id (NULL for SMEs), the content
-- columns and source_schema. Each is `security_invoker = on`: it reads the
-- tables as whoever queries it, so their Row-Level Security filters every
-- row again (a plain view would read as its owner). agent_runs are all runs,
-- whatever their status (`Campaign.runs`); agent_outputs are the runs that
-- SUCCEEDED, with their output (`Campaign.outputs`); usage sums the runs per
-- organization, client, calendar month (UTC) of their creation and agent.
--
-- Reporting logins. `strata org reporting-login` creates one PostgreSQL login
-- per organization, a member of the NOLOGIN role app_reporting, or per client
-- of an agency, a member of app_reporting_client (itself a member of
-- app_reporting), and of nothing else: never of a runtime role, so `SET ROLE
-- app_sme` fails. Its tenant context is a row of app.reporting_logins keyed
-- by the login's name, which only the owner writes. The helpers find that
-- row by `session_user`, which neither `SET ROLE`, `SET`, `RESET ALL` nor
-- `set_config()` can change; no setting is read, so none widens what a login
-- sees. Every policy is one comparison with a key column, an index condition
-- (the helpers run once per scan, never per row), with no sub-select and no
-- IS NULL escape: `reporting_org` (org_id) for app_reporting, and the
-- RESTRICTIVE `reporting_client` (client_id) for app_reporting_client.
-- Policies apply by the current role, which `SET ROLE app_reporting` would
-- change for a client's login, so reporting_org_id() answers only while the
-- current role is bound by `reporting_client` exactly when the login is
-- limited to a client: a client's login that sets its role to
-- app_reporting reads nothing.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['app_reporting', 'app_reporting_client'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
    IF NOT pg_has_role('app_reporting_client', 'app_reporting', 'MEMBER') THEN
        GRANT app_reporting TO app_reporting_client;
    END IF;
END
$roles$;

CREATE SCHEMA reporting AUTHORIZATION strata_owner;
REVOKE ALL ON SCHEMA reporting FROM PUBLIC;

SET LOCAL ROLE strata_owner;

-- Which organization (and client) each reporting login reads. Rows go when
-- their organization or client does, so a login of a deleted organization
-- reads nothing. One login per organization and per client.
CREATE TABLE app.reporting_logins (
    login            name PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    client_id        uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    password_set_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reporting_logins_org_client_key UNIQUE NULLS NOT DISTINCT (org_id, client_id),
    FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE
);
ALTER TABLE app.reporting_logins ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.reporting_logins FORCE ROW LEVEL SECURITY;
-- A login reads its own row (the helpers run as the login); the owner, as
-- which `strata org reporting-login` writes them, manages all of them.
CREATE POLICY own_login ON app.reporting_logins FOR SELECT TO app_reporting
    USING (login = session_user);
CREATE POLICY manage_logins ON app.reporting_logins TO strata_owner
    USING (true) WITH CHECK (true);

-- STABLE SQL with every name schema-qualified (the body is parsed with the
-- caller's search_path). Not inlined (they read a table), so a policy calls
-- each one once per index scan, as the scan's key.
CREATE FUNCTION app.reporting_org_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT l.org_id FROM app.reporting_logins AS l
          WHERE l.login OPERATOR(pg_catalog.=) SESSION_USER
            AND (l.client_id IS NULL) OPERATOR(pg_catalog.<>)
                pg_catalog.pg_has_role(CURRENT_USER, 'app_reporting_client', 'USAGE') $$;

CREATE FUNCTION app.reporting_client_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT l.client_id FROM app.reporting_logins AS l
          WHERE l.login OPERATOR(pg_catalog.=) SESSION_USER $$;

REVOKE ALL ON FUNCTION app.reporting_org_id(), app.reporting_client_id()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reporting_org_id(), app.reporting_client_id()
    TO app_reporting;
GRANT USAGE ON SCHEMA app, tenant_b, reporting TO app_reporting;
GRANT SELECT (login, org_id, client_id) ON app.reporting_logins TO app_reporting;

-- What the views read, column by column: nothing else (no created_by, no
-- heartbeat, no API key, member or audit row), and no write.
GRANT SELECT (org_id, id, name, objective, status, created_at, updated_at)
    ON public.campaigns, tenant_b.campaigns TO app_reporting;
GRANT SELECT (client_id) ON tenant_b.campaigns TO app_reporting;
GRANT SELECT (org_id, id, campaign_id, agent, status, input, output, error, prompt_tokens,
              completion_tokens, created_at, started_at, finished_at)
    ON public.agent_outputs, tenant_b.outputs TO app_reporting;
GRANT SELECT (client_id) ON tenant_b.outputs TO app_reporting;
GRANT SELECT (org_id, content, updated_at) ON public.brand_guidelines TO app_reporting;
GRANT SELECT (org_id, id, name, description, attributes, created_at, updated_at)
    ON public.personas TO app_reporting;
GRANT SELECT (org_id, id, client_id, kind, name, content, created_at, updated_at)
    ON tenant_b.entity_data TO app_reporting;
GRANT SELECT (org_id, id, name, slug, archived_at, created_at, updated_at)
    ON tenant_b.workspace_entities TO app_reporting;

-- Rows: the login's organization, and of it the login's client when it has
-- one. FOR SELECT: the roles write nothing.
DO $policies$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'public.campaigns', 'public.agent_outputs', 'public.brand_guidelines', 'public.personas',
        'tenant_b.campaigns', 'tenant_b.outputs', 'tenant_b.entity_data', 'tenant_b.workspace_entities'
    ] LOOP
        EXECUTE format('CREATE POLICY reporting_org ON %s FOR SELECT TO app_reporting '
                       'USING (org_id = app.reporting_org_id())', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['tenant_b.campaigns', 'tenant_b.outputs', 'tenant_b.entity_data'] LOOP
        EXECUTE format('CREATE POLICY reporting_client ON %s AS RESTRICTIVE FOR SELECT TO app_reporting_client '
                       'USING (client_id = app.reporting_client_id())', t);
    END LOOP;
END
$policies$;
CREATE POLICY reporting_client ON tenant_b.workspace_entities AS RESTRICTIVE FOR SELECT TO app_reporting_client
    USING (id = app.reporting_client_id());

-- `strata org reporting-login` records each action in the organization's
-- audit log, as the owner: only rows about reporting logins.
CREATE POLICY reporting_login_audit ON public.audit_log FOR INSERT TO strata_owner
    WITH CHECK (target_type = 'ReportingLogin');

-- The views ------------------------------------------------------------------

CREATE VIEW reporting.campaigns WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id, id, name, objective, status, created_at, updated_at,
           'public'::text AS source_schema
    FROM public.campaigns
    UNION ALL
    SELECT org_id, client_id, id, name, objective, status, created_at, updated_at,
           'tenant_b'::text
    FROM tenant_b.campaigns;

CREATE VIEW reporting.agent_runs WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id, id, campaign_id, agent, status, input, output, error,
           prompt_tokens, completion_tokens, created_at, started_at, finished_at,
           'public'::text AS source_schema
    FROM public.agent_outputs
    UNION ALL
    SELECT org_id, client_id, id, campaign_id, agent, status, input, output, error,
           prompt_tokens, completion_tokens, created_at, started_at, finished_at,
           'tenant_b'::text
    FROM tenant_b.outputs;

CREATE VIEW reporting.agent_outputs WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id, id, campaign_id, agent, output,
           prompt_tokens, completion_tokens, created_at, finished_at,
           'public'::text AS source_schema
    FROM public.agent_outputs WHERE status = 'SUCCEEDED'
    UNION ALL
    SELECT org_id, client_id, id, campaign_id, agent, output,
           prompt_tokens, completion_tokens, created_at, finished_at,
           'tenant_b'::text
    FROM tenant_b.outputs WHERE status = 'SUCCEEDED';

CREATE VIEW reporting.brand_guidelines WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id, content, updated_at,
           'public'::text AS source_schema
    FROM public.brand_guidelines
    UNION ALL
    SELECT org_id, client_id, content, updated_at,
           'tenant_b'::text
    FROM tenant_b.entity_data WHERE kind = 'BRAND_GUIDELINES';

CREATE VIEW reporting.personas WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id, id, name, description, attributes, created_at, updated_at,
           'public'::text AS source_schema
    FROM public.personas
    UNION ALL
    SELECT org_id, client_id, id, coalesce(name, ''), content ->> 'description',
           coalesce(content -> 'attributes', '{}'::jsonb), created_at, updated_at,
           'tenant_b'::text
    FROM tenant_b.entity_data WHERE kind = 'PERSONA';

-- Clients are agencies' only: SMEs have none.
CREATE VIEW reporting.clients WITH (security_invoker = on) AS
    SELECT org_id, id AS client_id, name, slug, archived_at IS NOT NULL AS archived, archived_at,
           created_at, updated_at,
           'tenant_b'::text AS source_schema
    FROM tenant_b.workspace_entities;

CREATE VIEW reporting.usage WITH (security_invoker = on) AS
    SELECT org_id, NULL::uuid AS client_id,
           date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, agent,
           count(*) AS runs, count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded_runs,
           sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
           sum(prompt_tokens + completion_tokens)::bigint AS tokens,
           'public'::text AS source_schema
    FROM public.agent_outputs
    GROUP BY org_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, agent
    UNION ALL
    SELECT org_id, client_id,
           date_trunc('month', created_at AT TIME ZONE 'UTC')::date, agent,
           count(*), count(*) FILTER (WHERE status = 'SUCCEEDED'),
           sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint,
           sum(prompt_tokens + completion_tokens)::bigint,
           'tenant_b'::text
    FROM tenant_b.outputs
    GROUP BY org_id, client_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, agent;

GRANT SELECT ON reporting.campaigns, reporting.agent_runs, reporting.agent_outputs,
    reporting.brand_guidelines, reporting.personas, reporting.clients, reporting.usage
    TO app_reporting;

RESET ROLE;
