SET LOCAL ROLE strata_owner;

DROP INDEX public.audit_log_operation_created_idx;
DROP INDEX public.audit_log_key_created_idx;
DROP INDEX public.audit_log_user_created_idx;
DROP INDEX public.audit_log_client_created_idx;

DROP INDEX tenant_b.entity_data_name_trgm_idx;
DROP INDEX tenant_b.entity_data_client_kind_name_idx;
DROP INDEX tenant_b.entity_data_kind_name_idx;
DROP INDEX tenant_b.entity_data_kind_created_idx;
DROP INDEX tenant_b.workspace_entities_org_name_trgm_idx;
DROP INDEX tenant_b.workspace_entities_org_name_idx;
DROP INDEX tenant_b.campaigns_org_name_trgm_idx;
DROP INDEX tenant_b.campaigns_client_name_idx;
DROP INDEX tenant_b.campaigns_org_name_idx;
DROP INDEX public.personas_org_name_trgm_idx;
DROP INDEX public.personas_org_name_idx;
DROP INDEX public.campaigns_org_name_trgm_idx;
DROP INDEX public.campaigns_org_name_idx;

RESET ROLE;

REVOKE USAGE ON SCHEMA extensions FROM strata_owner;

-- The extensions stay: other objects of the database may use them.
