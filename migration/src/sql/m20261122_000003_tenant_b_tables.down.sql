ALTER TABLE public.api_keys DROP CONSTRAINT api_keys_client_fkey;
DROP TABLE tenant_b.outputs;
DROP TABLE tenant_b.campaigns;
DROP TABLE tenant_b.entity_data;
DROP TABLE tenant_b.client_assignments;
DROP TABLE tenant_b.workspace_entities;
