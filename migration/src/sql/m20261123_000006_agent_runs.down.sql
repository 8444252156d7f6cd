SET LOCAL ROLE strata_owner;
DROP POLICY IF EXISTS unfinished_runs ON public.agent_outputs;
DROP POLICY IF EXISTS fail_unfinished_runs ON public.agent_outputs;
DROP POLICY IF EXISTS unfinished_runs ON tenant_b.outputs;
DROP POLICY IF EXISTS fail_unfinished_runs ON tenant_b.outputs;
REVOKE ALL ON public.agent_outputs, tenant_b.outputs FROM app_maint;
REVOKE USAGE ON SCHEMA tenant_b FROM app_maint;
DROP TABLE public.token_usage;
RESET ROLE;
-- The role is left in place: roles are cluster-wide and may serve other
-- databases of the cluster (as the roles of the first migration are).
