SET LOCAL ROLE strata_owner;

DROP INDEX tenant_b.outputs_client_created_idx;
DROP INDEX tenant_b.outputs_org_created_idx;
DROP INDEX public.agent_outputs_org_created_idx;

RESET ROLE;
