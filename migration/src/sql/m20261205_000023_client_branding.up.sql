-- White-label branding per client of an agency: what the client's own
-- material (its campaign briefs) shows instead of the agency's branding.
-- (Column and constraint apart: Citus wants every constraint named.)
ALTER TABLE tenant_b.workspace_entities ADD COLUMN branding jsonb NOT NULL DEFAULT '{}';
ALTER TABLE tenant_b.workspace_entities ADD CONSTRAINT workspace_entities_branding_check
    CHECK (jsonb_typeof(branding) = 'object');
