SET LOCAL ROLE strata_owner;
REVOKE SELECT (heartbeat_at, started_at, created_at)
    ON public.agent_outputs, tenant_b.outputs FROM app_maint;
DROP POLICY IF EXISTS lease_unfinished_runs ON public.agent_outputs;
DROP POLICY IF EXISTS renew_unfinished_runs ON public.agent_outputs;
DROP POLICY IF EXISTS lease_unfinished_runs ON tenant_b.outputs;
DROP POLICY IF EXISTS renew_unfinished_runs ON tenant_b.outputs;
REVOKE ALL ON public.agent_outputs, tenant_b.outputs FROM app_lease;
REVOKE USAGE ON SCHEMA tenant_b FROM app_lease;
DROP INDEX public.agent_outputs_unfinished_idx;
DROP INDEX tenant_b.outputs_unfinished_idx;
ALTER TABLE public.agent_outputs DROP COLUMN heartbeat_at;
ALTER TABLE tenant_b.outputs DROP COLUMN heartbeat_at;
RESET ROLE;
-- The role is left in place: roles are cluster-wide and may serve other
-- databases of the cluster (as the roles of the earlier migrations are).
