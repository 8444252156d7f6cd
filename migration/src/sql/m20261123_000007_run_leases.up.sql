-- Leases on agent runs, so that several gateways can share a database: the
-- process executing a run renews its lease (heartbeat_at) every few seconds,
-- and a run whose lease is older than a stale window is failed by whichever
-- gateway sweeps next. A run's lease is coalesce(heartbeat_at, started_at,
-- created_at): a run queued by a process that stopped before it renewed
-- anything still expires.
SET LOCAL ROLE strata_owner;

ALTER TABLE public.agent_outputs ADD COLUMN heartbeat_at timestamptz;
ALTER TABLE tenant_b.outputs ADD COLUMN heartbeat_at timestamptz;

-- Unfinished runs are few whatever the history holds: the sweep walks these
-- instead of the tables. Leading with org_id like every index here; a
-- heartbeat changes no indexed column, so it stays a HOT update.
CREATE INDEX agent_outputs_unfinished_idx ON public.agent_outputs (org_id, id)
    WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX outputs_unfinished_idx ON tenant_b.outputs (org_id, id)
    WHERE status IN ('QUEUED', 'RUNNING');

RESET ROLE;

-- app_lease renews leases and does nothing else: it sees org_id and id of
-- unfinished runs (enough to find the rows a process holds), writes only
-- heartbeat_at, and only to the present (now(): a lease cannot be forged into
-- the future or the past). It cannot change a status, read content, or see a
-- finished run. A role of its own keeps app_maint's one write "to FAILED":
-- policies cannot compare a row's old and new status, so a role allowed both
-- to renew and to fail could also move an unfinished run between QUEUED and
-- RUNNING, or write a reason onto a run it does not fail.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_lease') THEN
        CREATE ROLE app_lease NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT pg_has_role('strata_gateway', 'app_lease', 'MEMBER') THEN
        GRANT app_lease TO strata_gateway;
    END IF;
END
$roles$;

SET LOCAL ROLE strata_owner;

GRANT USAGE ON SCHEMA tenant_b TO app_lease;
GRANT SELECT (org_id, id), UPDATE (heartbeat_at)
    ON public.agent_outputs, tenant_b.outputs TO app_lease;
CREATE POLICY lease_unfinished_runs ON public.agent_outputs FOR SELECT TO app_lease
    USING (status IN ('QUEUED', 'RUNNING'));
CREATE POLICY renew_unfinished_runs ON public.agent_outputs FOR UPDATE TO app_lease
    USING (status IN ('QUEUED', 'RUNNING'))
    WITH CHECK (status IN ('QUEUED', 'RUNNING') AND heartbeat_at = now());
CREATE POLICY lease_unfinished_runs ON tenant_b.outputs FOR SELECT TO app_lease
    USING (status IN ('QUEUED', 'RUNNING'));
CREATE POLICY renew_unfinished_runs ON tenant_b.outputs FOR UPDATE TO app_lease
    USING (status IN ('QUEUED', 'RUNNING'))
    WITH CHECK (status IN ('QUEUED', 'RUNNING') AND heartbeat_at = now());

-- app_maint now fails only runs whose lease expired, so it reads the three
-- times the lease is made of; its policies (unfinished rows, towards FAILED
-- only) and its writes (status, error, finished_at) stay as they were.
GRANT SELECT (heartbeat_at, started_at, created_at)
    ON public.agent_outputs, tenant_b.outputs TO app_maint;

RESET ROLE;
