-- Lists a board is built on, and the audit log's filters: campaigns,
-- clients and personas sorted by name (either way, a backward index scan
-- serves the other direction) and
-- searched by a case-insensitive substring of their name. Every index leads
-- with org_id; the search indexes are GIN indexes over (org_id, name
-- trigrams), so one tenant's search never reads another tenant's entries.
--
-- pg_trgm gives the trigram operator class, btree_gin the uuid one that
-- lets org_id lead a GIN index. Both are trusted extensions: whoever runs the
-- migrations needs CREATE on the database, not superuser. They live in a
-- schema of their own that no runtime role needs: index scans call their
-- support functions without a privilege check, and ILIKE is built in.
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA extensions;
-- The owner names the trigram operator class in its indexes.
GRANT USAGE ON SCHEMA extensions TO strata_owner;

SET LOCAL ROLE strata_owner;

CREATE INDEX campaigns_org_name_idx ON public.campaigns (org_id, name, id);
CREATE INDEX campaigns_org_name_trgm_idx
    ON public.campaigns USING gin (org_id, name extensions.gin_trgm_ops);
CREATE INDEX personas_org_name_idx ON public.personas (org_id, name, id);
CREATE INDEX personas_org_name_trgm_idx
    ON public.personas USING gin (org_id, name extensions.gin_trgm_ops);

CREATE INDEX campaigns_org_name_idx ON tenant_b.campaigns (org_id, name, id);
CREATE INDEX campaigns_client_name_idx ON tenant_b.campaigns (org_id, client_id, name, id);
CREATE INDEX campaigns_org_name_trgm_idx
    ON tenant_b.campaigns USING gin (org_id, name extensions.gin_trgm_ops);

CREATE INDEX workspace_entities_org_name_idx ON tenant_b.workspace_entities (org_id, name, id);
CREATE INDEX workspace_entities_org_name_trgm_idx
    ON tenant_b.workspace_entities USING gin (org_id, name extensions.gin_trgm_ops);

-- An agency's personas across its clients, newest first or by name, and
-- one client's by name.
CREATE INDEX entity_data_kind_created_idx
    ON tenant_b.entity_data (org_id, kind, created_at DESC, id DESC);
CREATE INDEX entity_data_kind_name_idx ON tenant_b.entity_data (org_id, kind, name, id);
CREATE INDEX entity_data_client_kind_name_idx
    ON tenant_b.entity_data (org_id, client_id, kind, name, id);
CREATE INDEX entity_data_name_trgm_idx
    ON tenant_b.entity_data USING gin (org_id, name extensions.gin_trgm_ops)
    WHERE kind = 'PERSONA';

-- The audit log narrowed by client, actor (a user or an API key) or
-- operation, newest first; a time range alone reads the (org_id,
-- created_at) index.
CREATE INDEX audit_log_client_created_idx
    ON public.audit_log (org_id, client_id, created_at DESC, id DESC);
CREATE INDEX audit_log_user_created_idx
    ON public.audit_log (org_id, actor_user_id, created_at DESC, id DESC);
CREATE INDEX audit_log_key_created_idx
    ON public.audit_log (org_id, actor_api_key_id, created_at DESC, id DESC);
CREATE INDEX audit_log_operation_created_idx
    ON public.audit_log (org_id, operation, created_at DESC, id DESC);

RESET ROLE;
