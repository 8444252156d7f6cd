-- The schema the migrations build, normalized from the catalog (tables,
-- keys, indexes, Row-Level Security, policies, grants, functions).
-- Generated: UPDATE_SCHEMA_SQL=1 cargo test -p strata-tests schema_sql

CREATE TABLE app.reporting_logins -- owner strata_owner, row level security forced
    login name NOT NULL
    org_id uuid NOT NULL
    client_id uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    password_set_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT reporting_logins_org_client_key UNIQUE NULLS NOT DISTINCT (org_id, client_id)
  CONSTRAINT reporting_logins_org_id_client_id_fkey FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities(org_id, id) ON DELETE CASCADE
  CONSTRAINT reporting_logins_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations(id) ON DELETE CASCADE
  CONSTRAINT reporting_logins_pkey PRIMARY KEY (login)
  CREATE UNIQUE INDEX reporting_logins_org_client_key ON app.reporting_logins USING btree (org_id, client_id) NULLS NOT DISTINCT;
  CREATE UNIQUE INDEX reporting_logins_pkey ON app.reporting_logins USING btree (login);
  POLICY manage_logins AS PERMISSIVE FOR ALL TO strata_owner USING (true) WITH CHECK (true)
  POLICY own_login AS PERMISSIVE FOR SELECT TO app_reporting USING ((login = SESSION_USER))
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (client_id, login, org_id) TO app_reporting

CREATE TABLE public.agent_outputs -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'SME'::text
    campaign_id uuid NOT NULL
    agent text NOT NULL
    status text NOT NULL DEFAULT 'QUEUED'::text
    input jsonb NOT NULL DEFAULT '{}'::jsonb
    output jsonb
    error text
    prompt_tokens integer NOT NULL DEFAULT 0
    completion_tokens integer NOT NULL DEFAULT 0
    created_by uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    started_at timestamp with time zone
    finished_at timestamp with time zone
    heartbeat_at timestamp with time zone
  CONSTRAINT agent_outputs_completion_tokens_check CHECK ((completion_tokens >= 0))
  CONSTRAINT agent_outputs_org_id_campaign_id_fkey FOREIGN KEY (org_id, campaign_id) REFERENCES campaigns(org_id, id) ON DELETE CASCADE
  CONSTRAINT agent_outputs_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT agent_outputs_org_type_check CHECK ((org_type = 'SME'::text))
  CONSTRAINT agent_outputs_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT agent_outputs_prompt_tokens_check CHECK ((prompt_tokens >= 0))
  CONSTRAINT agent_outputs_status_check CHECK ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'SUCCEEDED'::text, 'FAILED'::text, 'CANCELLED'::text])))
  CREATE INDEX agent_outputs_campaign_created_idx ON public.agent_outputs USING btree (org_id, campaign_id, created_at DESC, id DESC);
  CREATE INDEX agent_outputs_org_created_idx ON public.agent_outputs USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX agent_outputs_unfinished_idx ON public.agent_outputs USING btree (org_id, id) WHERE (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]));
  CREATE UNIQUE INDEX agent_outputs_pkey ON public.agent_outputs USING btree (org_id, id);
  POLICY fail_unfinished_runs AS PERMISSIVE FOR UPDATE TO app_maint USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]))) WITH CHECK ((status = 'FAILED'::text))
  POLICY lease_unfinished_runs AS PERMISSIVE FOR SELECT TO app_lease USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])))
  POLICY renew_unfinished_runs AS PERMISSIVE FOR UPDATE TO app_lease USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]))) WITH CHECK (((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])) AND (heartbeat_at = now())))
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY unfinished_runs AS PERMISSIVE FOR SELECT TO app_maint USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'FAILED'::text])))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (id, org_id) TO app_lease
  GRANT UPDATE (heartbeat_at) TO app_lease
  GRANT SELECT (created_at, heartbeat_at, id, org_id, started_at, status) TO app_maint
  GRANT UPDATE (error, finished_at, status) TO app_maint
  GRANT SELECT (agent, campaign_id, completion_tokens, created_at, error, finished_at, id, input, org_id, output, prompt_tokens, started_at, status) TO app_reporting

CREATE TABLE public.api_keys -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    client_id uuid
    name text NOT NULL
    prefix text NOT NULL
    key_hash text NOT NULL
    read_only boolean NOT NULL DEFAULT false
    expires_at timestamp with time zone
    revoked_at timestamp with time zone
    last_used_at timestamp with time zone
    created_by uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    org_type text NOT NULL
    previous_key_hash text
    previous_valid_until timestamp with time zone
    client_ids uuid[] NOT NULL DEFAULT '{}'::uuid[]
    rate_limit_per_minute integer
  CONSTRAINT api_keys_client_fkey FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities(org_id, id) ON DELETE CASCADE
  CONSTRAINT api_keys_client_ids_check CHECK ((NOT (client_id IS DISTINCT FROM client_ids[1])))
  CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT api_keys_org_hash_key UNIQUE (org_id, key_hash)
  CONSTRAINT api_keys_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations(id) ON DELETE CASCADE
  CONSTRAINT api_keys_org_type_check CHECK ((org_type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CONSTRAINT api_keys_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT api_keys_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT api_keys_rate_limit_check CHECK (((rate_limit_per_minute >= 1) AND (rate_limit_per_minute <= 1000000)))
  CREATE INDEX api_keys_hash_idx ON public.api_keys USING btree (key_hash);
  CREATE INDEX api_keys_org_created_idx ON public.api_keys USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX api_keys_previous_hash_idx ON public.api_keys USING btree (previous_key_hash) WHERE (previous_key_hash IS NOT NULL);
  CREATE UNIQUE INDEX api_keys_org_hash_key ON public.api_keys USING btree (org_id, key_hash);
  CREATE UNIQUE INDEX api_keys_pkey ON public.api_keys USING btree (org_id, id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_select AS RESTRICTIVE FOR SELECT TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY presented_key AS PERMISSIVE FOR SELECT TO app_auth USING (((key_hash = app.current_api_key_hash()) OR (previous_key_hash = app.current_api_key_hash())))
  POLICY presented_key_touch AS PERMISSIVE FOR UPDATE TO app_auth USING (((key_hash = app.current_api_key_hash()) OR (previous_key_hash = app.current_api_key_hash()))) WITH CHECK (((key_hash = app.current_api_key_hash()) OR (previous_key_hash = app.current_api_key_hash())))
  POLICY tenant_org AS PERMISSIVE FOR ALL TO app_agency, app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT SELECT TO app_auth
  GRANT INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT UPDATE (last_used_at) TO app_auth

CREATE TABLE public.audit_log -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    client_id uuid
    actor_user_id uuid
    actor_api_key_id uuid
    operation text NOT NULL
    target_type text NOT NULL
    target_id uuid
    request_id text
    details jsonb NOT NULL DEFAULT '{}'::jsonb
    created_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT audit_log_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations(id) ON DELETE CASCADE
  CONSTRAINT audit_log_pkey PRIMARY KEY (org_id, id)
  CREATE INDEX audit_log_client_created_idx ON public.audit_log USING btree (org_id, client_id, created_at DESC, id DESC);
  CREATE INDEX audit_log_key_created_idx ON public.audit_log USING btree (org_id, actor_api_key_id, created_at DESC, id DESC);
  CREATE INDEX audit_log_operation_created_idx ON public.audit_log USING btree (org_id, operation, created_at DESC, id DESC);
  CREATE INDEX audit_log_org_created_idx ON public.audit_log USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX audit_log_user_created_idx ON public.audit_log USING btree (org_id, actor_user_id, created_at DESC, id DESC);
  CREATE UNIQUE INDEX audit_log_pkey ON public.audit_log USING btree (org_id, id);
  POLICY administer_select AS RESTRICTIVE FOR SELECT TO app_agency, app_sme USING (app.can_administer())
  POLICY erase_client_rows AS PERMISSIVE FOR DELETE TO app_agency USING (((org_id = app.current_org_id()) AND (client_id IS NOT NULL) AND (operation <> 'deleteClient'::text) AND app.can_administer()))
  POLICY operator_quota_audit AS PERMISSIVE FOR INSERT TO strata_owner WITH CHECK ((target_type = 'OrganizationQuota'::text))
  POLICY own_membership_audit AS PERMISSIVE FOR INSERT TO app_auth WITH CHECK (((actor_user_id = app.current_user_id()) AND (operation = ANY (ARRAY['acceptInvitation'::text, 'leaveOrganization'::text, 'revokeSessions'::text, 'deleteAccount'::text]))))
  POLICY reporting_login_audit AS PERMISSIVE FOR INSERT TO strata_owner WITH CHECK ((target_type = 'ReportingLogin'::text))
  POLICY tenant_org AS PERMISSIVE FOR SELECT TO app_agency, app_sme USING ((org_id = app.current_org_id()))
  POLICY tenant_org_insert AS PERMISSIVE FOR INSERT TO app_agency, app_sme WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT TO app_agency
  GRANT INSERT TO app_auth
  GRANT INSERT, SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE TABLE public.brand_guidelines -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'SME'::text
    content jsonb NOT NULL DEFAULT '{}'::jsonb
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT brand_guidelines_content_check CHECK ((jsonb_typeof(content) = 'object'::text))
  CONSTRAINT brand_guidelines_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT brand_guidelines_org_type_check CHECK ((org_type = 'SME'::text))
  CONSTRAINT brand_guidelines_pkey PRIMARY KEY (org_id)
  CREATE UNIQUE INDEX brand_guidelines_pkey ON public.brand_guidelines USING btree (org_id);
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (content, org_id, updated_at) TO app_reporting

CREATE TABLE public.campaigns -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'SME'::text
    name text NOT NULL
    objective text
    status text NOT NULL DEFAULT 'DRAFT'::text
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT campaigns_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT campaigns_objective_check CHECK (((objective IS NULL) OR (length(objective) <= 4000)))
  CONSTRAINT campaigns_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT campaigns_org_type_check CHECK ((org_type = 'SME'::text))
  CONSTRAINT campaigns_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT campaigns_status_check CHECK ((status = ANY (ARRAY['DRAFT'::text, 'ACTIVE'::text, 'PAUSED'::text, 'COMPLETED'::text, 'ARCHIVED'::text])))
  CREATE INDEX campaigns_org_created_idx ON public.campaigns USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX campaigns_org_name_idx ON public.campaigns USING btree (org_id, name, id);
  CREATE INDEX campaigns_org_name_trgm_idx ON public.campaigns USING gin (org_id, name extensions.gin_trgm_ops);
  CREATE UNIQUE INDEX campaigns_pkey ON public.campaigns USING btree (org_id, id);
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (created_at, id, name, objective, org_id, status, updated_at) TO app_reporting

CREATE TABLE public.data_export_chunks -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    export_id uuid NOT NULL
    seq integer NOT NULL
    org_type text NOT NULL
    data bytea NOT NULL
  CONSTRAINT data_export_chunks_export_fkey FOREIGN KEY (org_id, export_id) REFERENCES data_exports(org_id, id) ON DELETE CASCADE
  CONSTRAINT data_export_chunks_org_type_check CHECK ((org_type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CONSTRAINT data_export_chunks_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT data_export_chunks_pkey PRIMARY KEY (org_id, export_id, seq)
  CONSTRAINT data_export_chunks_seq_check CHECK ((seq >= 0))
  CREATE UNIQUE INDEX data_export_chunks_pkey ON public.data_export_chunks USING btree (org_id, export_id, seq);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_select AS RESTRICTIVE FOR SELECT TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_administer()) WITH CHECK (app.can_administer())
  POLICY tenant_org AS PERMISSIVE FOR ALL TO app_agency, app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  GRANT DELETE, INSERT, SELECT TO app_agency
  GRANT DELETE, INSERT, SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE TABLE public.data_exports -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL
    client_id uuid
    status text NOT NULL DEFAULT 'RUNNING'::text
    row_count bigint NOT NULL DEFAULT 0
    bytes bigint NOT NULL DEFAULT 0
    chunks integer NOT NULL DEFAULT 0
    error text
    created_by uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
    finished_at timestamp with time zone
    expires_at timestamp with time zone NOT NULL
  CONSTRAINT data_exports_client_check CHECK (((client_id IS NULL) OR (org_type = 'AGENCY'::text)))
  CONSTRAINT data_exports_counts_check CHECK (((row_count >= 0) AND (bytes >= 0) AND (chunks >= 0)))
  CONSTRAINT data_exports_error_check CHECK ((length(error) <= 1000))
  CONSTRAINT data_exports_org_type_check CHECK ((org_type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CONSTRAINT data_exports_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT data_exports_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT data_exports_status_check CHECK ((status = ANY (ARRAY['RUNNING'::text, 'READY'::text, 'FAILED'::text])))
  CREATE INDEX data_exports_expires_idx ON public.data_exports USING btree (expires_at);
  CREATE INDEX data_exports_org_created_idx ON public.data_exports USING btree (org_id, created_at DESC, id DESC);
  CREATE UNIQUE INDEX data_exports_pkey ON public.data_exports USING btree (org_id, id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_select AS RESTRICTIVE FOR SELECT TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_administer()) WITH CHECK (app.can_administer())
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency, app_sme USING ((app.all_clients() OR (client_id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (client_id = ANY (app.current_client_ids()))))
  POLICY expired_exports AS PERMISSIVE FOR SELECT TO app_maint USING ((expires_at < now()))
  POLICY expired_exports_delete AS PERMISSIVE FOR DELETE TO app_maint USING ((expires_at < now()))
  POLICY tenant_org AS PERMISSIVE FOR ALL TO app_agency, app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  GRANT DELETE, INSERT, SELECT TO app_agency
  GRANT DELETE TO app_maint
  GRANT DELETE, INSERT, SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT UPDATE (bytes, chunks, error, expires_at, finished_at, row_count, status, updated_at) TO app_agency
  GRANT SELECT (expires_at, id, org_id) TO app_maint
  GRANT UPDATE (bytes, chunks, error, expires_at, finished_at, row_count, status, updated_at) TO app_sme

CREATE TABLE public.invitations -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL
    email text NOT NULL
    role text NOT NULL
    client_ids uuid[] NOT NULL DEFAULT '{}'::uuid[]
    invited_by uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    expires_at timestamp with time zone NOT NULL
    revoked_at timestamp with time zone
    accepted_at timestamp with time zone
    accepted_by uuid
  CONSTRAINT invitations_email_check CHECK ((((length(email) >= 3) AND (length(email) <= 320)) AND (email = lower(email))))
  CONSTRAINT invitations_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations(id) ON DELETE CASCADE
  CONSTRAINT invitations_org_type_check CHECK ((org_type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CONSTRAINT invitations_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT invitations_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT invitations_role_check CHECK ((role = ANY (ARRAY['OWNER'::text, 'ADMIN'::text, 'STRATEGIST'::text, 'ACCOUNT_MANAGER'::text, 'VIEWER'::text])))
  CREATE INDEX invitations_email_idx ON public.invitations USING btree (email) WHERE ((accepted_at IS NULL) AND (revoked_at IS NULL));
  CREATE INDEX invitations_org_created_idx ON public.invitations USING btree (org_id, created_at DESC, id DESC);
  CREATE UNIQUE INDEX invitations_pending_key ON public.invitations USING btree (org_id, email) WHERE ((accepted_at IS NULL) AND (revoked_at IS NULL));
  CREATE UNIQUE INDEX invitations_pkey ON public.invitations USING btree (org_id, id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_select AS RESTRICTIVE FOR SELECT TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_administer()) WITH CHECK (app.can_administer())
  POLICY invited_accept AS PERMISSIVE FOR UPDATE TO app_auth USING ((email = app.current_user_email())) WITH CHECK (((email = app.current_user_email()) AND (accepted_by = app.current_user_id())))
  POLICY invited_email AS PERMISSIVE FOR SELECT TO app_auth USING ((email = app.current_user_email()))
  POLICY tenant_org AS PERMISSIVE FOR ALL TO app_agency, app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT TO app_agency
  GRANT SELECT TO app_auth
  GRANT DELETE, INSERT, SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT UPDATE (client_ids, revoked_at) TO app_agency
  GRANT UPDATE (accepted_at, accepted_by) TO app_auth
  GRANT UPDATE (client_ids, revoked_at) TO app_sme

CREATE TABLE public.memberships -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    user_id uuid NOT NULL
    org_type text NOT NULL
    role text NOT NULL
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
    email text
    name text
    sessions_valid_after timestamp with time zone
  CONSTRAINT memberships_email_check CHECK ((length(email) <= 320))
  CONSTRAINT memberships_name_check CHECK ((length(name) <= 200))
  CONSTRAINT memberships_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT memberships_org_type_check CHECK ((org_type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id)
  CONSTRAINT memberships_role_check CHECK ((role = ANY (ARRAY['OWNER'::text, 'ADMIN'::text, 'STRATEGIST'::text, 'ACCOUNT_MANAGER'::text, 'VIEWER'::text])))
  CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
  CREATE INDEX memberships_org_created_idx ON public.memberships USING btree (org_id, created_at, user_id);
  CREATE INDEX memberships_user_idx ON public.memberships USING btree (user_id);
  CREATE UNIQUE INDEX memberships_pkey ON public.memberships USING btree (org_id, user_id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING (((org_id = app.current_org_id()) AND (org_type = 'AGENCY'::text))) WITH CHECK (((org_id = app.current_org_id()) AND (org_type = 'AGENCY'::text)))
  POLICY join_invited AS PERMISSIVE FOR INSERT TO app_auth WITH CHECK (((user_id = app.current_user_id()) AND (role <> 'OWNER'::text)))
  POLICY leave_own AS PERMISSIVE FOR DELETE TO app_auth USING (((user_id = app.current_user_id()) AND (role <> 'OWNER'::text)))
  POLICY own_identity AS PERMISSIVE FOR UPDATE TO app_auth USING ((user_id = app.current_user_id())) WITH CHECK ((user_id = app.current_user_id()))
  POLICY own_memberships AS PERMISSIVE FOR SELECT TO app_auth USING ((user_id = app.current_user_id()))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING (((org_id = app.current_org_id()) AND (org_type = 'SME'::text))) WITH CHECK (((org_id = app.current_org_id()) AND (org_type = 'SME'::text)))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT DELETE, SELECT TO app_auth
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT INSERT (created_at, email, name, org_id, org_type, role, updated_at, user_id) TO app_auth
  GRANT UPDATE (email, name) TO app_auth

CREATE TABLE public.organizations -- owner strata_owner, row level security forced
    id uuid NOT NULL
    type text NOT NULL
    name text NOT NULL
    slug text NOT NULL
    settings jsonb NOT NULL DEFAULT '{}'::jsonb
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
    monthly_token_quota bigint
    require_mfa boolean NOT NULL DEFAULT false
    retention_days integer
  CONSTRAINT organizations_id_type_key UNIQUE (id, type)
  CONSTRAINT organizations_monthly_token_quota_check CHECK ((monthly_token_quota >= 0))
  CONSTRAINT organizations_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT organizations_pkey PRIMARY KEY (id)
  CONSTRAINT organizations_retention_days_check CHECK (((retention_days >= 1) AND (retention_days <= 3650)))
  CONSTRAINT organizations_settings_check CHECK ((jsonb_typeof(settings) = 'object'::text))
  CONSTRAINT organizations_slug_check CHECK ((slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'::text))
  CONSTRAINT organizations_slug_key UNIQUE (slug)
  CONSTRAINT organizations_type_check CHECK ((type = ANY (ARRAY['SME'::text, 'AGENCY'::text])))
  CREATE UNIQUE INDEX organizations_id_type_key ON public.organizations USING btree (id, type);
  CREATE UNIQUE INDEX organizations_pkey ON public.organizations USING btree (id);
  CREATE UNIQUE INDEX organizations_slug_key ON public.organizations USING btree (slug);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING (((id = app.current_org_id()) AND (type = 'AGENCY'::text))) WITH CHECK (((id = app.current_org_id()) AND (type = 'AGENCY'::text)))
  POLICY member_orgs AS PERMISSIVE FOR SELECT TO app_auth USING ((id = ANY (app.member_org_ids())))
  POLICY operator_find AS PERMISSIVE FOR SELECT TO strata_owner USING ((id = app.operator_org_id()))
  POLICY operator_quota AS PERMISSIVE FOR UPDATE TO strata_owner USING ((id = app.operator_org_id())) WITH CHECK ((id = app.operator_org_id()))
  POLICY retention_orgs AS PERMISSIVE FOR SELECT TO app_maint USING ((retention_days > 0))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING (((id = app.current_org_id()) AND (type = 'SME'::text))) WITH CHECK (((id = app.current_org_id()) AND (type = 'SME'::text)))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT TO app_agency
  GRANT DELETE, INSERT, SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT UPDATE (name, require_mfa, retention_days, settings, updated_at) TO app_agency
  GRANT SELECT (id, name, require_mfa, slug, type) TO app_auth
  GRANT SELECT (id, retention_days, type) TO app_maint
  GRANT UPDATE (name, require_mfa, retention_days, settings, updated_at) TO app_sme

CREATE TABLE public.personas -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'SME'::text
    name text NOT NULL
    description text
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT personas_attributes_check CHECK ((jsonb_typeof(attributes) = 'object'::text))
  CONSTRAINT personas_description_check CHECK (((description IS NULL) OR (length(description) <= 4000)))
  CONSTRAINT personas_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT personas_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT personas_org_type_check CHECK ((org_type = 'SME'::text))
  CONSTRAINT personas_pkey PRIMARY KEY (org_id, id)
  CREATE INDEX personas_org_created_idx ON public.personas USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX personas_org_name_idx ON public.personas USING btree (org_id, name, id);
  CREATE INDEX personas_org_name_trgm_idx ON public.personas USING gin (org_id, name extensions.gin_trgm_ops);
  CREATE UNIQUE INDEX personas_pkey ON public.personas USING btree (org_id, id);
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY sme_org AS PERMISSIVE FOR ALL TO app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (attributes, created_at, description, id, name, org_id, updated_at) TO app_reporting

CREATE TABLE public.token_usage -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    month date NOT NULL
    tokens bigint NOT NULL DEFAULT 0
    runs bigint NOT NULL DEFAULT 0
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT token_usage_month_check CHECK ((EXTRACT(day FROM month) = (1)::numeric))
  CONSTRAINT token_usage_org_id_fkey FOREIGN KEY (org_id) REFERENCES organizations(id) ON DELETE CASCADE
  CONSTRAINT token_usage_pkey PRIMARY KEY (org_id, month)
  CONSTRAINT token_usage_runs_check CHECK ((runs >= 0))
  CONSTRAINT token_usage_tokens_check CHECK ((tokens >= 0))
  CREATE UNIQUE INDEX token_usage_pkey ON public.token_usage USING btree (org_id, month);
  POLICY tenant_org AS PERMISSIVE FOR ALL TO app_agency, app_sme USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT INSERT, SELECT, UPDATE TO app_agency
  GRANT INSERT, SELECT, UPDATE TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE TABLE public.users -- owner strata_owner, row level security forced
    id uuid NOT NULL
    email text
    created_at timestamp with time zone NOT NULL DEFAULT now()
    last_seen_at timestamp with time zone NOT NULL DEFAULT now()
    sessions_valid_after timestamp with time zone
  CONSTRAINT users_email_check CHECK (((email IS NULL) OR (length(email) <= 320)))
  CONSTRAINT users_pkey PRIMARY KEY (id)
  CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id);
  POLICY own_user AS PERMISSIVE FOR ALL TO app_agency, app_auth, app_sme USING ((id = app.current_user_id())) WITH CHECK ((id = app.current_user_id()))
  GRANT SELECT TO app_agency
  GRANT INSERT, SELECT, UPDATE TO app_auth
  GRANT SELECT TO app_sme
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT UPDATE (sessions_valid_after) TO app_agency
  GRANT UPDATE (sessions_valid_after) TO app_sme

CREATE VIEW reporting.agent_outputs -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    id uuid
    campaign_id uuid
    agent text
    output jsonb
    prompt_tokens integer
    completion_tokens integer
    created_at timestamp with time zone
    finished_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.agent_runs -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    id uuid
    campaign_id uuid
    agent text
    status text
    input jsonb
    output jsonb
    error text
    prompt_tokens integer
    completion_tokens integer
    created_at timestamp with time zone
    started_at timestamp with time zone
    finished_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.brand_guidelines -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    content jsonb
    updated_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.campaigns -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    id uuid
    name text
    objective text
    status text
    created_at timestamp with time zone
    updated_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.clients -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    name text
    slug text
    archived boolean
    archived_at timestamp with time zone
    created_at timestamp with time zone
    updated_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.personas -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    id uuid
    name text
    description text
    attributes jsonb
    created_at timestamp with time zone
    updated_at timestamp with time zone
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE VIEW reporting.usage -- owner strata_owner, security_invoker=on
    org_id uuid
    client_id uuid
    month date
    agent text
    runs bigint
    succeeded_runs bigint
    prompt_tokens bigint
    completion_tokens bigint
    tokens bigint
    source_schema text
  GRANT SELECT TO app_reporting
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE TABLE tenant_b.campaigns -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    client_id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'AGENCY'::text
    name text NOT NULL
    objective text
    status text NOT NULL DEFAULT 'DRAFT'::text
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT campaigns_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT campaigns_objective_check CHECK (((objective IS NULL) OR (length(objective) <= 4000)))
  CONSTRAINT campaigns_org_client_id_key UNIQUE (org_id, client_id, id)
  CONSTRAINT campaigns_org_id_client_id_fkey FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities(org_id, id) ON DELETE CASCADE
  CONSTRAINT campaigns_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT campaigns_org_type_check CHECK ((org_type = 'AGENCY'::text))
  CONSTRAINT campaigns_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT campaigns_status_check CHECK ((status = ANY (ARRAY['DRAFT'::text, 'ACTIVE'::text, 'PAUSED'::text, 'COMPLETED'::text, 'ARCHIVED'::text])))
  CREATE INDEX campaigns_client_created_idx ON tenant_b.campaigns USING btree (org_id, client_id, created_at DESC, id DESC);
  CREATE INDEX campaigns_client_name_idx ON tenant_b.campaigns USING btree (org_id, client_id, name, id);
  CREATE INDEX campaigns_org_created_idx ON tenant_b.campaigns USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX campaigns_org_name_idx ON tenant_b.campaigns USING btree (org_id, name, id);
  CREATE INDEX campaigns_org_name_trgm_idx ON tenant_b.campaigns USING gin (org_id, name extensions.gin_trgm_ops);
  CREATE UNIQUE INDEX campaigns_org_client_id_key ON tenant_b.campaigns USING btree (org_id, client_id, id);
  CREATE UNIQUE INDEX campaigns_pkey ON tenant_b.campaigns USING btree (org_id, id);
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency USING ((app.all_clients() OR (client_id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (client_id = ANY (app.current_client_ids()))))
  POLICY reporting_client AS RESTRICTIVE FOR SELECT TO app_reporting_client USING ((client_id = app.reporting_client_id()))
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (client_id, created_at, id, name, objective, org_id, status, updated_at) TO app_reporting

CREATE TABLE tenant_b.client_assignments -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    client_id uuid NOT NULL
    user_id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'AGENCY'::text
    created_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT client_assignments_org_id_client_id_fkey FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities(org_id, id) ON DELETE CASCADE
  CONSTRAINT client_assignments_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT client_assignments_org_id_user_id_fkey FOREIGN KEY (org_id, user_id) REFERENCES memberships(org_id, user_id) ON DELETE CASCADE
  CONSTRAINT client_assignments_org_type_check CHECK ((org_type = 'AGENCY'::text))
  CONSTRAINT client_assignments_pkey PRIMARY KEY (org_id, client_id, user_id)
  CREATE INDEX client_assignments_user_idx ON tenant_b.client_assignments USING btree (org_id, user_id);
  CREATE INDEX client_assignments_user_only_idx ON tenant_b.client_assignments USING btree (user_id);
  CREATE UNIQUE INDEX client_assignments_pkey ON tenant_b.client_assignments USING btree (org_id, client_id, user_id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency USING ((app.all_clients() OR (client_id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (client_id = ANY (app.current_client_ids()))))
  POLICY join_invited AS PERMISSIVE FOR INSERT TO app_auth WITH CHECK ((user_id = app.current_user_id()))
  POLICY own_assignments AS PERMISSIVE FOR SELECT TO app_auth USING ((user_id = app.current_user_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT INSERT, SELECT TO app_auth
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner

CREATE TABLE tenant_b.entity_data -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    client_id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'AGENCY'::text
    kind text NOT NULL
    name text
    content jsonb NOT NULL DEFAULT '{}'::jsonb
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
  CONSTRAINT entity_data_content_check CHECK ((jsonb_typeof(content) = 'object'::text))
  CONSTRAINT entity_data_kind_check CHECK ((kind = ANY (ARRAY['BRAND_GUIDELINES'::text, 'PERSONA'::text])))
  CONSTRAINT entity_data_name_check CHECK (((name IS NULL) OR ((length(name) >= 1) AND (length(name) <= 200))))
  CONSTRAINT entity_data_org_id_client_id_fkey FOREIGN KEY (org_id, client_id) REFERENCES tenant_b.workspace_entities(org_id, id) ON DELETE CASCADE
  CONSTRAINT entity_data_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT entity_data_org_type_check CHECK ((org_type = 'AGENCY'::text))
  CONSTRAINT entity_data_pkey PRIMARY KEY (org_id, id)
  CREATE INDEX entity_data_client_kind_idx ON tenant_b.entity_data USING btree (org_id, client_id, kind, created_at DESC, id DESC);
  CREATE INDEX entity_data_client_kind_name_idx ON tenant_b.entity_data USING btree (org_id, client_id, kind, name, id);
  CREATE INDEX entity_data_kind_created_idx ON tenant_b.entity_data USING btree (org_id, kind, created_at DESC, id DESC);
  CREATE INDEX entity_data_kind_name_idx ON tenant_b.entity_data USING btree (org_id, kind, name, id);
  CREATE INDEX entity_data_name_trgm_idx ON tenant_b.entity_data USING gin (org_id, name extensions.gin_trgm_ops) WHERE (kind = 'PERSONA'::text);
  CREATE UNIQUE INDEX entity_data_one_guidelines_per_client ON tenant_b.entity_data USING btree (org_id, client_id) WHERE (kind = 'BRAND_GUIDELINES'::text);
  CREATE UNIQUE INDEX entity_data_pkey ON tenant_b.entity_data USING btree (org_id, id);
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency USING ((app.all_clients() OR (client_id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (client_id = ANY (app.current_client_ids()))))
  POLICY reporting_client AS RESTRICTIVE FOR SELECT TO app_reporting_client USING ((client_id = app.reporting_client_id()))
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (client_id, content, created_at, id, kind, name, org_id, updated_at) TO app_reporting

CREATE TABLE tenant_b.outputs -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    client_id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'AGENCY'::text
    campaign_id uuid NOT NULL
    agent text NOT NULL
    status text NOT NULL DEFAULT 'QUEUED'::text
    input jsonb NOT NULL DEFAULT '{}'::jsonb
    output jsonb
    error text
    prompt_tokens integer NOT NULL DEFAULT 0
    completion_tokens integer NOT NULL DEFAULT 0
    created_by uuid
    created_at timestamp with time zone NOT NULL DEFAULT now()
    started_at timestamp with time zone
    finished_at timestamp with time zone
    heartbeat_at timestamp with time zone
  CONSTRAINT outputs_completion_tokens_check CHECK ((completion_tokens >= 0))
  CONSTRAINT outputs_org_id_client_id_campaign_id_fkey FOREIGN KEY (org_id, client_id, campaign_id) REFERENCES tenant_b.campaigns(org_id, client_id, id) ON DELETE CASCADE
  CONSTRAINT outputs_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT outputs_org_type_check CHECK ((org_type = 'AGENCY'::text))
  CONSTRAINT outputs_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT outputs_prompt_tokens_check CHECK ((prompt_tokens >= 0))
  CONSTRAINT outputs_status_check CHECK ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'SUCCEEDED'::text, 'FAILED'::text, 'CANCELLED'::text])))
  CREATE INDEX outputs_campaign_created_idx ON tenant_b.outputs USING btree (org_id, campaign_id, created_at DESC, id DESC);
  CREATE INDEX outputs_client_created_idx ON tenant_b.outputs USING btree (org_id, client_id, created_at DESC, id DESC);
  CREATE INDEX outputs_client_idx ON tenant_b.outputs USING btree (org_id, client_id);
  CREATE INDEX outputs_org_created_idx ON tenant_b.outputs USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX outputs_unfinished_idx ON tenant_b.outputs USING btree (org_id, id) WHERE (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]));
  CREATE UNIQUE INDEX outputs_pkey ON tenant_b.outputs USING btree (org_id, id);
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency USING ((app.all_clients() OR (client_id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (client_id = ANY (app.current_client_ids()))))
  POLICY fail_unfinished_runs AS PERMISSIVE FOR UPDATE TO app_maint USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]))) WITH CHECK ((status = 'FAILED'::text))
  POLICY lease_unfinished_runs AS PERMISSIVE FOR SELECT TO app_lease USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])))
  POLICY renew_unfinished_runs AS PERMISSIVE FOR UPDATE TO app_lease USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]))) WITH CHECK (((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])) AND (heartbeat_at = now())))
  POLICY reporting_client AS RESTRICTIVE FOR SELECT TO app_reporting_client USING ((client_id = app.reporting_client_id()))
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY unfinished_runs AS PERMISSIVE FOR SELECT TO app_maint USING ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'FAILED'::text])))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (id, org_id) TO app_lease
  GRANT UPDATE (heartbeat_at) TO app_lease
  GRANT SELECT (created_at, heartbeat_at, id, org_id, started_at, status) TO app_maint
  GRANT UPDATE (error, finished_at, status) TO app_maint
  GRANT SELECT (agent, campaign_id, client_id, completion_tokens, created_at, error, finished_at, id, input, org_id, output, prompt_tokens, started_at, status) TO app_reporting

CREATE TABLE tenant_b.workspace_entities -- owner strata_owner, row level security forced
    org_id uuid NOT NULL
    id uuid NOT NULL
    org_type text NOT NULL DEFAULT 'AGENCY'::text
    name text NOT NULL
    slug text NOT NULL
    archived_at timestamp with time zone
    created_at timestamp with time zone NOT NULL DEFAULT now()
    updated_at timestamp with time zone NOT NULL DEFAULT now()
    branding jsonb NOT NULL DEFAULT '{}'::jsonb
  CONSTRAINT workspace_entities_branding_check CHECK ((jsonb_typeof(branding) = 'object'::text))
  CONSTRAINT workspace_entities_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
  CONSTRAINT workspace_entities_org_id_org_type_fkey FOREIGN KEY (org_id, org_type) REFERENCES organizations(id, type) ON DELETE CASCADE
  CONSTRAINT workspace_entities_org_slug_key UNIQUE (org_id, slug)
  CONSTRAINT workspace_entities_org_type_check CHECK ((org_type = 'AGENCY'::text))
  CONSTRAINT workspace_entities_pkey PRIMARY KEY (org_id, id)
  CONSTRAINT workspace_entities_slug_check CHECK ((slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'::text))
  CREATE INDEX workspace_entities_org_created_idx ON tenant_b.workspace_entities USING btree (org_id, created_at DESC, id DESC);
  CREATE INDEX workspace_entities_org_name_idx ON tenant_b.workspace_entities USING btree (org_id, name, id);
  CREATE INDEX workspace_entities_org_name_trgm_idx ON tenant_b.workspace_entities USING gin (org_id, name extensions.gin_trgm_ops);
  CREATE UNIQUE INDEX workspace_entities_org_slug_key ON tenant_b.workspace_entities USING btree (org_id, slug);
  CREATE UNIQUE INDEX workspace_entities_pkey ON tenant_b.workspace_entities USING btree (org_id, id);
  POLICY administer_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_administer())
  POLICY administer_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY administer_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme WITH CHECK (app.can_administer())
  POLICY agency_org AS PERMISSIVE FOR ALL TO app_agency USING ((org_id = app.current_org_id())) WITH CHECK ((org_id = app.current_org_id()))
  POLICY client_scope AS RESTRICTIVE FOR ALL TO app_agency USING ((app.all_clients() OR (id = ANY (app.current_client_ids())))) WITH CHECK ((app.all_clients() OR (id = ANY (app.current_client_ids()))))
  POLICY reporting_client AS RESTRICTIVE FOR SELECT TO app_reporting_client USING ((id = app.reporting_client_id()))
  POLICY reporting_org AS PERMISSIVE FOR SELECT TO app_reporting USING ((org_id = app.reporting_org_id()))
  POLICY writable_delete AS RESTRICTIVE FOR DELETE TO app_agency, app_sme USING (app.can_write())
  POLICY writable_insert AS RESTRICTIVE FOR INSERT TO app_agency, app_sme WITH CHECK (app.can_write())
  POLICY writable_update AS RESTRICTIVE FOR UPDATE TO app_agency, app_sme USING (app.can_write()) WITH CHECK (app.can_write())
  GRANT DELETE, INSERT, SELECT, UPDATE TO app_agency
  GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE TO strata_owner
  GRANT SELECT (archived_at, created_at, id, name, org_id, slug, updated_at) TO app_reporting

CREATE OR REPLACE FUNCTION app.all_clients()
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT coalesce(nullif(pg_catalog.current_setting('app.all_clients', true), '')::pg_catalog.bool, false) $function$
;

CREATE OR REPLACE FUNCTION app.begin_request(p_role text, p_org_id uuid, p_user_id uuid, p_client_ids uuid[], p_all_clients boolean, p_can_write boolean, p_api_key_hash text, p_request_id text, p_can_administer boolean DEFAULT false)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog'
AS $function$
BEGIN
    IF p_role NOT IN ('app_sme', 'app_agency', 'app_auth') THEN
        RAISE EXCEPTION 'unknown runtime role' USING ERRCODE = '22023';
    END IF;
    EXECUTE format('SET LOCAL app.org_id = %L', coalesce(p_org_id::text, ''));
    EXECUTE format('SET LOCAL app.user_id = %L', coalesce(p_user_id::text, ''));
    EXECUTE format('SET LOCAL app.client_ids = %L', coalesce(p_client_ids, '{}'::uuid[])::text);
    EXECUTE format('SET LOCAL app.all_clients = %L', coalesce(p_all_clients, false)::text);
    EXECUTE format('SET LOCAL app.can_write = %L', coalesce(p_can_write, false)::text);
    EXECUTE format('SET LOCAL app.can_administer = %L', coalesce(p_can_administer, false)::text);
    EXECUTE format('SET LOCAL app.api_key_hash = %L', coalesce(p_api_key_hash, ''));
    EXECUTE format('SET LOCAL app.request_id = %L', coalesce(p_request_id, ''));
    EXECUTE format('SET LOCAL ROLE %I', p_role);
END
$function$
;

CREATE OR REPLACE FUNCTION app.can_administer()
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT coalesce(nullif(pg_catalog.current_setting('app.can_administer', true), '')::pg_catalog.bool, false) $function$
;

CREATE OR REPLACE FUNCTION app.can_write()
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT coalesce(nullif(pg_catalog.current_setting('app.can_write', true), '')::pg_catalog.bool, false) $function$
;

CREATE OR REPLACE FUNCTION app.current_api_key_hash()
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT nullif(pg_catalog.current_setting('app.api_key_hash', true), '') $function$
;

CREATE OR REPLACE FUNCTION app.current_client_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT coalesce(nullif(pg_catalog.current_setting('app.client_ids', true), '')::pg_catalog.uuid[], '{}'::pg_catalog.uuid[]) $function$
;

CREATE OR REPLACE FUNCTION app.current_org_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT nullif(pg_catalog.current_setting('app.org_id', true), '')::pg_catalog.uuid $function$
;

CREATE OR REPLACE FUNCTION app.current_user_email()
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$SELECT nullif(pg_catalog.current_setting('app.user_email', true), '')$function$
;

CREATE OR REPLACE FUNCTION app.current_user_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT nullif(pg_catalog.current_setting('app.user_id', true), '')::pg_catalog.uuid $function$
;

CREATE OR REPLACE FUNCTION app.member_org_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$SELECT coalesce(nullif(pg_catalog.current_setting('app.member_org_ids', true), '')::pg_catalog.uuid[], '{}'::pg_catalog.uuid[])$function$
;

CREATE OR REPLACE FUNCTION app.operator_org_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$SELECT nullif(pg_catalog.current_setting('app.operator_org_id', true), '')::pg_catalog.uuid$function$
;

CREATE OR REPLACE FUNCTION app.reporting_client_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT l.client_id FROM app.reporting_logins AS l
          WHERE l.login OPERATOR(pg_catalog.=) SESSION_USER $function$
;

CREATE OR REPLACE FUNCTION app.reporting_org_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$ SELECT l.org_id FROM app.reporting_logins AS l
          WHERE l.login OPERATOR(pg_catalog.=) SESSION_USER
            AND (l.client_id IS NULL) OPERATOR(pg_catalog.<>)
                pg_catalog.pg_has_role(CURRENT_USER, 'app_reporting_client', 'USAGE') $function$
;

