-- Erasing a client (deleteClient): the client's row goes, and its content
-- follows by the foreign keys' ON DELETE CASCADE (campaigns, runs and
-- outputs with their streamed text, brand guidelines, personas,
-- assignments). The API keys limited to it are deleted by the same
-- transaction (on Citus no foreign key joins the reference table of keys
-- to the distributed clients), as are the audit rows about it, which have
-- no foreign key: an owner or admin of an agency may delete those, and
-- only those, tombstones of earlier erasures excepted. The transaction then writes one tombstone row (who, when,
-- which client id).
--
-- The restrictive writable_delete (not a viewer, not a read-only key)
-- applies to it too; on Citus, which copies policies to the shards without
-- AS RESTRICTIVE, the migration creates it with that condition folded in.
GRANT DELETE ON public.audit_log TO app_agency;
GRANT DELETE ON public.api_keys TO app_agency;
-- Erasing an organization (deleteOrganization, owners only): its row goes,
-- and every row naming it follows by the foreign keys' cascades. The
-- tables' policies already admit it; the grant was missing.
GRANT DELETE ON public.organizations TO app_sme, app_agency;

SET LOCAL ROLE strata_owner;

CREATE POLICY erase_client_rows ON public.audit_log FOR DELETE TO app_agency
    USING (org_id = app.current_org_id() AND client_id IS NOT NULL
           AND operation <> 'deleteClient' AND app.can_administer());

RESET ROLE;
