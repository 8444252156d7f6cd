ALTER TABLE tenant_b.workspace_entities DROP CONSTRAINT workspace_entities_branding_check;
ALTER TABLE tenant_b.workspace_entities DROP COLUMN branding;
