-- Agent runs: monthly token usage per organization, and a narrow role that
-- lets the gateway fail runs a crash left unfinished.
SET LOCAL ROLE strata_owner;

-- Tokens used per organization and calendar month (UTC), for the quota. One
-- row per organization and month, so every member's runs count, whatever
-- clients they can see.
CREATE TABLE public.token_usage (
    org_id      uuid NOT NULL REFERENCES public.organizations (id) ON DELETE CASCADE,
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    tokens      bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    runs        bigint NOT NULL DEFAULT 0 CHECK (runs >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, month)
);
GRANT SELECT, INSERT, UPDATE ON public.token_usage TO app_sme, app_agency;
CREATE POLICY tenant_org ON public.token_usage TO app_sme, app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
ALTER TABLE public.token_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.token_usage FORCE ROW LEVEL SECURITY;

RESET ROLE;

-- app_maint may see that a run is unfinished and mark it FAILED, nothing
-- more: three columns to read, three to write, only unfinished (or failed)
-- rows, only towards FAILED. It reads no content and no other table.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_maint') THEN
        CREATE ROLE app_maint NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT pg_has_role('strata_gateway', 'app_maint', 'MEMBER') THEN
        GRANT app_maint TO strata_gateway;
    END IF;
END
$roles$;

SET LOCAL ROLE strata_owner;
GRANT USAGE ON SCHEMA tenant_b TO app_maint;
GRANT SELECT (org_id, id, status), UPDATE (status, error, finished_at)
    ON public.agent_outputs, tenant_b.outputs TO app_maint;
-- PostgreSQL checks an updated row against the SELECT policies too, so the
-- role may also see that a run FAILED (still only org_id, id and status).
CREATE POLICY unfinished_runs ON public.agent_outputs FOR SELECT TO app_maint
    USING (status IN ('QUEUED', 'RUNNING', 'FAILED'));
CREATE POLICY fail_unfinished_runs ON public.agent_outputs FOR UPDATE TO app_maint
    USING (status IN ('QUEUED', 'RUNNING')) WITH CHECK (status = 'FAILED');
CREATE POLICY unfinished_runs ON tenant_b.outputs FOR SELECT TO app_maint
    USING (status IN ('QUEUED', 'RUNNING', 'FAILED'));
CREATE POLICY fail_unfinished_runs ON tenant_b.outputs FOR UPDATE TO app_maint
    USING (status IN ('QUEUED', 'RUNNING')) WITH CHECK (status = 'FAILED');
RESET ROLE;
