SET LOCAL ROLE strata_owner;

DROP POLICY member_orgs ON public.organizations;
DROP POLICY own_membership_audit ON public.audit_log;
DROP POLICY join_invited ON tenant_b.client_assignments;
DROP POLICY leave_own ON public.memberships;
DROP POLICY own_identity ON public.memberships;
DROP POLICY join_invited ON public.memberships;
DROP TABLE public.invitations;
DROP FUNCTION app.member_org_ids();
DROP FUNCTION app.current_user_email();

RESET ROLE;

REVOKE SELECT ON public.organizations FROM app_auth;
REVOKE INSERT ON public.audit_log FROM app_auth;
REVOKE INSERT ON tenant_b.client_assignments FROM app_auth;
REVOKE DELETE ON public.memberships FROM app_auth;
REVOKE INSERT, UPDATE ON public.memberships FROM app_auth;
REVOKE UPDATE ON public.users FROM app_sme, app_agency;
REVOKE UPDATE ON public.organizations FROM app_sme, app_agency;
GRANT UPDATE (name, settings, updated_at) ON public.organizations TO app_sme, app_agency;

ALTER TABLE public.organizations DROP COLUMN require_mfa;
ALTER TABLE public.users DROP COLUMN sessions_valid_after;
ALTER TABLE public.memberships DROP COLUMN sessions_valid_after;
ALTER TABLE public.memberships DROP COLUMN name;
ALTER TABLE public.memberships DROP COLUMN email;
