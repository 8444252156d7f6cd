-- Data exports: an organization's or one client's data as a JSON Lines
-- file (docs/EXPORT.md), written in chunks by the gateway and downloaded
-- from `GET /exports/{id}` by the organization's owners and admins until
-- it expires.
CREATE TABLE public.data_exports (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    org_type     text NOT NULL,
    -- The client exported; NULL: the whole organization.
    client_id    uuid,
    status       text NOT NULL DEFAULT 'RUNNING',
    row_count    bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    chunks       integer NOT NULL DEFAULT 0,
    error        text,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Written with every chunk: a running export whose gateway stopped
    -- is told apart by its silence.
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT data_exports_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT data_exports_org_type_fkey FOREIGN KEY (org_id, org_type)
        REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    CONSTRAINT data_exports_org_type_check CHECK (org_type IN ('SME', 'AGENCY')),
    CONSTRAINT data_exports_client_check CHECK (client_id IS NULL OR org_type = 'AGENCY'),
    CONSTRAINT data_exports_status_check CHECK (status IN ('RUNNING', 'READY', 'FAILED')),
    CONSTRAINT data_exports_counts_check CHECK (row_count >= 0 AND bytes >= 0 AND chunks >= 0),
    CONSTRAINT data_exports_error_check CHECK (length(error) <= 1000)
);
ALTER TABLE public.data_exports OWNER TO strata_owner;
ALTER TABLE public.data_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.data_exports FORCE ROW LEVEL SECURITY;
CREATE INDEX data_exports_org_created_idx ON public.data_exports (org_id, created_at DESC, id DESC);
CREATE INDEX data_exports_expires_idx ON public.data_exports (expires_at);

-- The file, in order: chunk `seq` holds bytes of the file one after
-- another (each ends with a whole line). Only owners and admins, who see
-- every client, reach it; a client's chunks go with its export, by the
-- foreign key the migration adds once the tables are distributed (on
-- Citus a local table may not reference a distributed one).
CREATE TABLE public.data_export_chunks (
    org_id     uuid NOT NULL,
    export_id  uuid NOT NULL,
    seq        integer NOT NULL,
    org_type   text NOT NULL,
    data       bytea NOT NULL,
    CONSTRAINT data_export_chunks_pkey PRIMARY KEY (org_id, export_id, seq),
    CONSTRAINT data_export_chunks_org_type_fkey FOREIGN KEY (org_id, org_type)
        REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    CONSTRAINT data_export_chunks_org_type_check CHECK (org_type IN ('SME', 'AGENCY')),
    CONSTRAINT data_export_chunks_seq_check CHECK (seq >= 0)
);
ALTER TABLE public.data_export_chunks OWNER TO strata_owner;
ALTER TABLE public.data_export_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.data_export_chunks FORCE ROW LEVEL SECURITY;

GRANT SELECT, INSERT, DELETE ON public.data_exports TO app_sme, app_agency;
GRANT UPDATE (status, row_count, bytes, chunks, error, updated_at, finished_at, expires_at)
    ON public.data_exports TO app_sme, app_agency;
GRANT SELECT, INSERT, DELETE ON public.data_export_chunks TO app_sme, app_agency;
-- The sweep deletes expired exports (their chunks go by the cascade).
GRANT SELECT (org_id, id, expires_at), DELETE ON public.data_exports TO app_maint;

SET LOCAL ROLE strata_owner;

CREATE POLICY tenant_org ON public.data_exports TO app_sme, app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY tenant_org ON public.data_export_chunks TO app_sme, app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
-- Only owners and admins start, follow, download or delete exports; a
-- caller limited to some clients reaches the exports of those alone,
-- never the whole organization's.
CREATE POLICY administer_select ON public.data_exports AS RESTRICTIVE FOR SELECT
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY administer_insert ON public.data_exports AS RESTRICTIVE FOR INSERT
    TO app_sme, app_agency WITH CHECK (app.can_administer());
CREATE POLICY administer_update ON public.data_exports AS RESTRICTIVE FOR UPDATE
    TO app_sme, app_agency USING (app.can_administer()) WITH CHECK (app.can_administer());
CREATE POLICY administer_delete ON public.data_exports AS RESTRICTIVE FOR DELETE
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY client_scope ON public.data_exports AS RESTRICTIVE FOR ALL TO app_sme, app_agency
    USING (app.all_clients() OR client_id = ANY (app.current_client_ids()))
    WITH CHECK (app.all_clients() OR client_id = ANY (app.current_client_ids()));
CREATE POLICY administer_select ON public.data_export_chunks AS RESTRICTIVE FOR SELECT
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY administer_insert ON public.data_export_chunks AS RESTRICTIVE FOR INSERT
    TO app_sme, app_agency WITH CHECK (app.can_administer());
CREATE POLICY administer_update ON public.data_export_chunks AS RESTRICTIVE FOR UPDATE
    TO app_sme, app_agency USING (app.can_administer()) WITH CHECK (app.can_administer());
CREATE POLICY administer_delete ON public.data_export_chunks AS RESTRICTIVE FOR DELETE
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY expired_exports ON public.data_exports FOR SELECT TO app_maint
    USING (expires_at < now());
CREATE POLICY expired_exports_delete ON public.data_exports FOR DELETE TO app_maint
    USING (expires_at < now());

RESET ROLE;
