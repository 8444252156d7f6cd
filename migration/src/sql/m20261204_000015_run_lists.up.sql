-- The agentRuns list: an organization's runs newest first, all of them or
-- one client's, each read from an index that leads with org_id.
SET LOCAL ROLE strata_owner;

CREATE INDEX agent_outputs_org_created_idx
    ON public.agent_outputs (org_id, created_at DESC, id DESC);
CREATE INDEX outputs_org_created_idx
    ON tenant_b.outputs (org_id, created_at DESC, id DESC);
CREATE INDEX outputs_client_created_idx
    ON tenant_b.outputs (org_id, client_id, created_at DESC, id DESC);

RESET ROLE;
