-- Teams: invitations by e-mail, members' names and e-mails, an MFA policy
-- per organization and signing out everywhere.
--
-- A member's e-mail and name are kept on their memberships, copied from
-- their tokens when a credential is resolved: the members of one
-- organization see each other's through the membership rows they already
-- share, while `users` stays visible to its own user only.
-- (Columns and constraints apart: Citus wants every constraint named.)
ALTER TABLE public.memberships ADD COLUMN email text;
ALTER TABLE public.memberships ADD CONSTRAINT memberships_email_check
    CHECK (length(email) <= 320);
ALTER TABLE public.memberships ADD COLUMN name text;
ALTER TABLE public.memberships ADD CONSTRAINT memberships_name_check
    CHECK (length(name) <= 200);
-- Tokens issued before this instant no longer reach this organization
-- (revokeSessions by an owner or admin).
ALTER TABLE public.memberships ADD COLUMN sessions_valid_after timestamptz;
-- Tokens issued before this instant are refused everywhere (revokeSessions
-- by the user).
ALTER TABLE public.users ADD COLUMN sessions_valid_after timestamptz;
-- Members must present a token whose `amr` names a second factor.
ALTER TABLE public.organizations ADD COLUMN require_mfa boolean NOT NULL DEFAULT false;

REVOKE UPDATE ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE (name, settings, require_mfa, updated_at) ON public.organizations TO app_sme, app_agency;
GRANT UPDATE (sessions_valid_after) ON public.users TO app_sme, app_agency;

CREATE TABLE public.invitations (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    org_type     text NOT NULL,
    email        text NOT NULL,
    role         text NOT NULL,
    client_ids   uuid[] NOT NULL DEFAULT '{}',
    invited_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    accepted_at  timestamptz,
    accepted_by  uuid,
    CONSTRAINT invitations_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT invitations_org_id_fkey FOREIGN KEY (org_id)
        REFERENCES public.organizations (id) ON DELETE CASCADE,
    CONSTRAINT invitations_org_type_fkey FOREIGN KEY (org_id, org_type)
        REFERENCES public.organizations (id, type) ON DELETE CASCADE,
    CONSTRAINT invitations_org_type_check CHECK (org_type IN ('SME', 'AGENCY')),
    CONSTRAINT invitations_email_check
        CHECK (length(email) BETWEEN 3 AND 320 AND email = lower(email)),
    CONSTRAINT invitations_role_check
        CHECK (role IN ('OWNER', 'ADMIN', 'STRATEGIST', 'ACCOUNT_MANAGER', 'VIEWER'))
);
ALTER TABLE public.invitations OWNER TO strata_owner;
ALTER TABLE public.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invitations FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE (revoked_at, client_ids), DELETE ON public.invitations TO app_sme, app_agency;
GRANT SELECT, UPDATE (accepted_at, accepted_by) ON public.invitations TO app_auth;

-- An invitation is accepted by a user whose token carries its address
-- verified; the membership it makes is their own.
GRANT INSERT (org_id, user_id, org_type, role, email, name, created_at, updated_at)
    ON public.memberships TO app_auth;
GRANT UPDATE (email, name) ON public.memberships TO app_auth;
GRANT DELETE ON public.memberships TO app_auth;
GRANT INSERT ON tenant_b.client_assignments TO app_auth;
GRANT INSERT ON public.audit_log TO app_auth;
GRANT SELECT (id, type, name, slug, require_mfa) ON public.organizations TO app_auth;

SET LOCAL ROLE strata_owner;

-- The verified e-mail of the user being resolved (lower case), set only
-- when their token says the provider verified it.
CREATE FUNCTION app.current_user_email() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT nullif(pg_catalog.current_setting(''app.user_email'', true), '''')';
-- The organizations the user being resolved belongs to, as their
-- memberships (read first, as their own rows) say.
CREATE FUNCTION app.member_org_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT coalesce(nullif(pg_catalog.current_setting(''app.member_org_ids'', true), '''')::pg_catalog.uuid[], ''{}''::pg_catalog.uuid[])';

CREATE INDEX invitations_org_created_idx ON public.invitations (org_id, created_at DESC, id DESC);
CREATE INDEX invitations_email_idx ON public.invitations (email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE UNIQUE INDEX invitations_pending_key ON public.invitations (org_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE POLICY tenant_org ON public.invitations TO app_sme, app_agency
    USING (org_id = app.current_org_id()) WITH CHECK (org_id = app.current_org_id());
CREATE POLICY administer_select ON public.invitations AS RESTRICTIVE FOR SELECT
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY administer_insert ON public.invitations AS RESTRICTIVE FOR INSERT
    TO app_sme, app_agency WITH CHECK (app.can_administer());
CREATE POLICY administer_update ON public.invitations AS RESTRICTIVE FOR UPDATE
    TO app_sme, app_agency USING (app.can_administer()) WITH CHECK (app.can_administer());
CREATE POLICY administer_delete ON public.invitations AS RESTRICTIVE FOR DELETE
    TO app_sme, app_agency USING (app.can_administer());
CREATE POLICY writable_insert ON public.invitations AS RESTRICTIVE FOR INSERT
    TO app_sme, app_agency WITH CHECK (app.can_write());
CREATE POLICY writable_update ON public.invitations AS RESTRICTIVE FOR UPDATE
    TO app_sme, app_agency USING (app.can_write()) WITH CHECK (app.can_write());
CREATE POLICY writable_delete ON public.invitations AS RESTRICTIVE FOR DELETE
    TO app_sme, app_agency USING (app.can_write());
CREATE POLICY invited_email ON public.invitations FOR SELECT TO app_auth
    USING (email = app.current_user_email());
CREATE POLICY invited_accept ON public.invitations FOR UPDATE TO app_auth
    USING (email = app.current_user_email())
    WITH CHECK (email = app.current_user_email() AND accepted_by = app.current_user_id());

-- What the user being resolved may do to their own memberships: join by
-- an invitation (never as an owner), keep their e-mail and name current,
-- and leave.
CREATE POLICY join_invited ON public.memberships FOR INSERT TO app_auth
    WITH CHECK (user_id = app.current_user_id() AND role <> 'OWNER');
CREATE POLICY own_identity ON public.memberships FOR UPDATE TO app_auth
    USING (user_id = app.current_user_id()) WITH CHECK (user_id = app.current_user_id());
CREATE POLICY leave_own ON public.memberships FOR DELETE TO app_auth
    USING (user_id = app.current_user_id() AND role <> 'OWNER');
CREATE POLICY join_invited ON tenant_b.client_assignments FOR INSERT TO app_auth
    WITH CHECK (user_id = app.current_user_id());
CREATE POLICY own_membership_audit ON public.audit_log FOR INSERT TO app_auth
    WITH CHECK (actor_user_id = app.current_user_id()
                AND operation IN ('acceptInvitation', 'leaveOrganization', 'revokeSessions', 'deleteAccount'));
-- The organizations of the user's memberships: name, slug, type and MFA
-- policy (the column grant above).
CREATE POLICY member_orgs ON public.organizations FOR SELECT TO app_auth
    USING (id = ANY (app.member_org_ids()));

RESET ROLE;
