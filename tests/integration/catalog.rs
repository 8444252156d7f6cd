//! The catalog says what the isolation layer is. Its checks are the
//! product's own (`strata_persistence::audit`, run by `strata audit` and at
//! start): these tests run them on a fresh database, family by family, with
//! the counts that show they looked at something; what each check reports
//! when the catalog is tampered with is in `audit.rs`. The plan test at
//! volume stays here: it needs data, which an audit of a live database
//! does not write.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use strata_persistence::audit::{self, Report};
use strata_tests::TestDb;

async fn rows(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The audit's findings whose id starts with one of `families`.
fn findings_of(report: &Report, families: &[&str]) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| families.iter().any(|p| f.id.starts_with(p)))
        .map(|f| format!("{} {}: {}", f.id, f.object, f.message))
        .collect()
}

async fn lint(conn: &DatabaseConnection) -> Report {
    audit::lint(conn).await.unwrap()
}

#[tokio::test]
async fn every_tenant_table_in_both_schemas_has_rls_enabled_and_forced() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let tenant_tables = rows(
        &conn,
        "SELECT DISTINCT c.oid::regclass::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')",
    )
    .await;
    assert!(
        tenant_tables.len() >= 12,
        "expected the tenant tables, found {tenant_tables:?}"
    );
    let problems = findings_of(&lint(&conn).await, &["rls.", "table."]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn runtime_roles_are_unprivileged_own_nothing_and_hold_no_dangerous_grants() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let roles = rows(
        &conn,
        "SELECT rolname::text FROM pg_roles
         WHERE rolname IN ('app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease', 'strata_gateway', 'strata_owner')",
    )
    .await;
    assert_eq!(roles.len(), 7, "the roles exist: {roles:?}");
    let problems = findings_of(&lint(&conn).await, &["role.", "login.", "grant.dangerous"]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn app_sme_has_nothing_in_tenant_b_and_app_agency_cannot_touch_sme_content() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    // The SME tables, as the audit finds them (org_type pinned to SME).
    let sme_tables = rows(
        &conn,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid
               AND k.contype = 'c' AND pg_get_constraintdef(k.oid) ~ 'org_type = ''SME''') ORDER BY 1",
    )
    .await;
    assert_eq!(
        sme_tables,
        ["agent_outputs", "brand_guidelines", "campaigns", "personas"]
    );
    let problems = findings_of(&lint(&conn).await, &["grant."]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn no_policy_has_a_subselect_or_a_null_escape_and_helpers_are_stable() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let policies = rows(
        &conn,
        "SELECT policyname::text FROM pg_policies WHERE schemaname IN ('public', 'tenant_b')",
    )
    .await;
    assert!(
        policies.len() >= 20,
        "expected policies, found {}",
        policies.len()
    );
    let report = lint(&conn).await;
    let problems = findings_of(&report, &["policy.", "function."]);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        !report.notes.iter().any(|n| n.contains("inlined")),
        "the plan check ran: {:?}",
        report.notes
    );
}

#[tokio::test]
async fn the_run_maintenance_roles_hold_only_the_columns_and_policies_they_need() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let mut columns = rows(
        &conn,
        "SELECT grantee || ' ' || privilege_type || ' ' || table_schema || '.' || table_name || '.' || column_name
         FROM information_schema.column_privileges WHERE grantee IN ('app_maint', 'app_lease')",
    )
    .await;
    columns.sort();
    let mut expected = Vec::new();
    for table in ["public.agent_outputs", "tenant_b.outputs"] {
        // Renewing: find a held run by its key, write its heartbeat.
        for column in ["org_id", "id"] {
            expected.push(format!("app_lease SELECT {table}.{column}"));
        }
        expected.push(format!("app_lease UPDATE {table}.heartbeat_at"));
        // Sweeping: find an unfinished run whose lease expired, fail it.
        for column in [
            "org_id",
            "id",
            "status",
            "heartbeat_at",
            "started_at",
            "created_at",
        ] {
            expected.push(format!("app_maint SELECT {table}.{column}"));
        }
        for column in ["status", "error", "finished_at"] {
            expected.push(format!("app_maint UPDATE {table}.{column}"));
        }
    }
    // The retention sweep: which organizations keep runs for how long,
    // and which data exports expired.
    for column in ["id", "type", "retention_days"] {
        expected.push(format!("app_maint SELECT public.organizations.{column}"));
    }
    for column in ["org_id", "id", "expires_at"] {
        expected.push(format!("app_maint SELECT public.data_exports.{column}"));
    }
    expected.sort();
    assert_eq!(columns, expected);
    let whole_tables = rows(
        &conn,
        "SELECT grantee || ' ' || privilege_type || ' ' || table_schema || '.' || table_name
         FROM information_schema.table_privileges WHERE grantee IN ('app_maint', 'app_lease')",
    )
    .await;
    // Deleting is granted on whole tables only: the expired exports, which
    // the policies below limit it to.
    assert_eq!(
        whole_tables,
        vec!["app_maint DELETE public.data_exports".to_owned()],
        "table-wide privileges"
    );
    let mut policies = rows(
        &conn,
        "SELECT schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' '
                || array_to_string(roles, ',') || ': ' || coalesce(qual, '') || ' / ' || coalesce(with_check, '')
         FROM pg_policies WHERE roles && ARRAY['app_maint', 'app_lease']::name[]",
    )
    .await;
    policies.sort();
    let unfinished = "(status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text]))";
    let mut expected = Vec::new();
    for table in ["public.agent_outputs", "tenant_b.outputs"] {
        expected.push(format!(
            "{table} fail_unfinished_runs UPDATE app_maint: {unfinished} / (status = 'FAILED'::text)"
        ));
        expected.push(format!(
            "{table} lease_unfinished_runs SELECT app_lease: {unfinished} / "
        ));
        // On Citus a renewal may write the coordinator's `now()`, a
        // moment before the worker's (`migration::citus::distributed`).
        expected.push(if db.is_citus() {
            format!(
                "{table} renew_unfinished_runs UPDATE app_lease: {unfinished} / \
                 ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])) AND ((heartbeat_at >= (now() - '00:01:00'::interval)) AND (heartbeat_at <= (now() + '00:01:00'::interval))))"
            )
        } else {
            format!(
                "{table} renew_unfinished_runs UPDATE app_lease: {unfinished} / \
                 ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])) AND (heartbeat_at = now()))"
            )
        });
        expected.push(format!(
            "{table} unfinished_runs SELECT app_maint: \
             (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'FAILED'::text])) / "
        ));
    }
    expected.push(
        "public.organizations retention_orgs SELECT app_maint: (retention_days > 0) / ".to_owned(),
    );
    for (policy, cmd) in [
        ("expired_exports", "SELECT"),
        ("expired_exports_delete", "DELETE"),
    ] {
        expected.push(format!(
            "public.data_exports {policy} {cmd} app_maint: (expires_at < now()) / "
        ));
    }
    expected.sort();
    assert_eq!(policies, expected);
    let members = rows(
        &conn,
        "SELECT r.rolname::text FROM pg_roles r
         WHERE r.rolname IN ('app_maint', 'app_lease') AND pg_has_role('strata_gateway', r.oid, 'MEMBER')",
    )
    .await;
    assert_eq!(members.len(), 2, "strata_gateway may switch to {members:?}");
}

/// Seeds `orgs` SMEs and `orgs` agencies, each with `per_org` campaigns and
/// one run per campaign (agencies: ten clients, campaigns spread over
/// them), as the superuser, and refreshes the planner's statistics. Ids are
/// derived from the numbers, so the caller can name any of them.
async fn seed_volume(su: &DatabaseConnection, orgs: u32, per_org: u32) {
    // On Citus, the coordinator's copy of a reference table is written
    // locally, and a later multi-shard statement of the same message may
    // not follow a local one: write everything through connections.
    su.execute_unprepared(&format!(
        "SET citus.enable_local_execution TO off;
         INSERT INTO public.organizations (id, type, name, slug)
           SELECT md5('sme-' || o)::uuid, 'SME', 'sme ' || o, 'plan-sme-' || o FROM generate_series(1, {orgs}) o
           UNION ALL
           SELECT md5('agency-' || o)::uuid, 'AGENCY', 'agency ' || o, 'plan-agency-' || o FROM generate_series(1, {orgs}) o;
         INSERT INTO public.campaigns (org_id, id, name, created_at)
           SELECT md5('sme-' || o)::uuid, md5('sme-' || o || '-' || c)::uuid, 'c' || c, now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, created_at)
           SELECT md5('sme-' || o)::uuid, md5('sme-run-' || o || '-' || c)::uuid, md5('sme-' || o || '-' || c)::uuid,
                  'BUSINESS_STRATEGY', 'SUCCEEDED', now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug, created_at)
           SELECT md5('agency-' || o)::uuid, md5('client-' || o || '-' || k)::uuid, 'client ' || k, 'client-' || k,
                  now() - k * interval '1 hour'
           FROM generate_series(1, {orgs}) o, generate_series(0, 9) k;
         INSERT INTO tenant_b.campaigns (org_id, id, client_id, name, created_at)
           SELECT md5('agency-' || o)::uuid, md5('agency-' || o || '-' || c)::uuid, md5('client-' || o || '-' || c % 10)::uuid,
                  'c' || c, now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, created_at)
           SELECT md5('agency-' || o)::uuid, md5('agency-run-' || o || '-' || c)::uuid, md5('client-' || o || '-' || c % 10)::uuid,
                  md5('agency-' || o || '-' || c)::uuid, 'BUSINESS_STRATEGY', 'SUCCEEDED', now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO public.personas (org_id, id, name, created_at)
           SELECT md5('sme-' || o)::uuid, md5('sme-persona-' || o || '-' || c)::uuid, 'persona ' || c, now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name, created_at)
           SELECT md5('agency-' || o)::uuid, md5('agency-persona-' || o || '-' || c)::uuid, md5('client-' || o || '-' || c % 10)::uuid,
                  'PERSONA', 'persona ' || c, now() - c * interval '1 minute'
           FROM generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         INSERT INTO public.audit_log (org_id, id, client_id, actor_user_id, operation, target_type, created_at)
           SELECT md5(t || '-' || o)::uuid, md5(t || '-audit-' || o || '-' || c)::uuid,
                  CASE WHEN t = 'agency' THEN md5('client-' || o || '-' || c % 10)::uuid END,
                  md5('actor-' || o || '-' || c % 5)::uuid,
                  (ARRAY['createCampaign', 'updateCampaign', 'runAgent', 'createPersona'])[1 + c % 4], 'Campaign',
                  now() - c * interval '1 minute'
           FROM unnest(ARRAY['sme', 'agency']) t, generate_series(1, {orgs}) o, generate_series(1, {per_org}) c;
         ANALYZE public.organizations, public.campaigns, public.agent_outputs, public.personas, public.audit_log,
                 tenant_b.workspace_entities, tenant_b.campaigns, tenant_b.outputs, tenant_b.entity_data;"
    ))
    .await
    .unwrap();
}

/// The id `seed_volume` derived from `key`.
async fn md5_uuid(su: &DatabaseConnection, key: &str) -> uuid::Uuid {
    strata_tests::text(su, &format!("SELECT md5('{key}')::uuid::text"))
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// The main list queries, as the runtime roles run them inside a request
/// transaction at a few hundred organizations' volume: every tenant table is
/// reached through an index that leads with `org_id`, never a sequential
/// scan, and the row-level security filters add no sub-plan.
#[tokio::test]
async fn main_queries_use_org_id_indexes_without_subplans() {
    use strata_domain::{ClientId, ClientScope, OrgId, Role};
    use strata_persistence::TenantTx;
    use strata_persistence::context::VerifiedContext;

    let test_db = TestDb::migrated().await;
    let su = test_db.superuser().await;
    let db = test_db.pool(1).await;
    seed_volume(&su, 300, 100).await;

    let tenant_tables: std::collections::HashSet<String> = rows(
        &su,
        "SELECT DISTINCT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')",
    )
    .await
    .into_iter()
    .collect();
    let org_id_indexes: std::collections::HashSet<String> = rows(
        &su,
        "SELECT i.relname::text FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_namespace n ON n.oid = i.relnamespace
         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
         WHERE n.nspname IN ('public', 'tenant_b') AND a.attname = 'org_id'",
    )
    .await
    .into_iter()
    .collect();

    let sme = OrgId::from_uuid(md5_uuid(&su, "sme-150").await);
    let agency = OrgId::from_uuid(md5_uuid(&su, "agency-150").await);
    let assigned = [
        ClientId::from_uuid(md5_uuid(&su, "client-150-3").await),
        ClientId::from_uuid(md5_uuid(&su, "client-150-7").await),
    ];
    let campaign_ids = |prefix: &str| {
        let ids: Vec<String> = (1..=20)
            .map(|c| format!("md5('{prefix}-150-{c}')::uuid"))
            .collect();
        format!("ARRAY[{}]", ids.join(", "))
    };
    // Each case acts as a member the database knows (added here by the
    // superuser), resolved from the membership as a request's caller is.
    let context = async |org_id: OrgId, role: Role, clients: &[ClientId]| {
        let user = strata_domain::UserId::generate();
        let mut sql = format!(
            "INSERT INTO public.users (id) VALUES ('{user}');
             INSERT INTO public.memberships (org_id, user_id, org_type, role)
               SELECT id, '{user}', type, '{role}' FROM public.organizations WHERE id = '{org_id}';",
            role = role.as_str(),
        );
        for c in clients {
            sql.push_str(&format!(
                "INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id)
                   VALUES ('{org_id}', '{c}', '{user}');"
            ));
        }
        su.execute_unprepared(&sql).await.unwrap();
        strata_persistence::context::resolve_for(&db, user, Some(org_id), "plan")
            .await
            .unwrap()
    };
    let runs = |table: &str, ids: &str, scope: &str| {
        format!(
            "SELECT o.* FROM unnest({ids}) AS c(id) CROSS JOIN LATERAL (
               SELECT * FROM {table} o WHERE o.org_id = '{{org}}' AND o.campaign_id = c.id
               AND o.status = 'SUCCEEDED'{scope} ORDER BY o.created_at DESC, o.id DESC LIMIT 11) o"
        )
    };
    let scope_list = format!("'{{{},{}}}'::uuid[]", assigned[0], assigned[1]);
    let account_manager = context(agency, Role::AccountManager, &assigned).await;
    assert!(
        matches!(account_manager.clients(), ClientScope::Only(ids)
            if ids.len() == assigned.len() && assigned.iter().all(|c| ids.contains(c))),
        "the account manager sees {:?}",
        account_manager.clients()
    );
    let cases: Vec<(&str, VerifiedContext, Vec<String>)> = vec![
        (
            "SME owner",
            context(sme, Role::Owner, &[]).await,
            vec![
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM public.campaigns WHERE org_id = '{org}'".into(),
                runs("public.agent_outputs", &campaign_ids("sme"), ""),
                // agentRuns, newest first, and filtered by status.
                "SELECT * FROM public.agent_outputs WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.agent_outputs WHERE org_id = '{org}' AND status IN ('SUCCEEDED') ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.agent_outputs WHERE org_id = '{org}' ORDER BY created_at, id LIMIT 21".into(),
                // The boards' lists: by name either way, by status, by a
                // created-at range, by a part of the name; personas too.
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' ORDER BY name, id LIMIT 21".into(),
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' AND (name, id) < ('c5', '00000000-0000-0000-0000-000000000000') ORDER BY name DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' AND status IN ('DRAFT', 'ACTIVE') ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' AND created_at >= now() - interval '30 minutes' AND created_at < now() ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' AND name ILIKE '%c1%' ORDER BY name, id LIMIT 21".into(),
                "SELECT count(*) FROM public.campaigns WHERE org_id = '{org}' AND name ILIKE '%c42%'".into(),
                "SELECT * FROM public.personas WHERE org_id = '{org}' ORDER BY name DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.personas WHERE org_id = '{org}' AND name ILIKE '%ona 7%' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                // The audit log, by operation, actor and time.
                "SELECT * FROM public.audit_log WHERE org_id = '{org}' AND operation = 'runAgent' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' AND operation = 'runAgent'".into(),
                "SELECT * FROM public.audit_log WHERE org_id = '{org}' AND (actor_user_id = md5('actor-150-3')::uuid OR actor_api_key_id = md5('actor-150-3')::uuid) ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM public.audit_log WHERE org_id = '{org}' AND created_at >= now() - interval '20 minutes' AND created_at < now() - interval '5 minutes' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
            ],
        ),
        (
            "agency owner",
            context(agency, Role::Owner, &[]).await,
            vec![
                "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM tenant_b.campaigns WHERE org_id = '{org}'".into(),
                "SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM tenant_b.workspace_entities WHERE org_id = '{org}'".into(),
                runs("tenant_b.outputs", &campaign_ids("agency"), ""),
                "SELECT * FROM tenant_b.outputs WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                format!("SELECT * FROM tenant_b.outputs WHERE org_id = '{{org}}' AND client_id = '{}' ORDER BY created_at DESC, id DESC LIMIT 21", assigned[0]),
                "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' ORDER BY name DESC, id DESC LIMIT 21".into(),
                format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = '{}' ORDER BY name, id LIMIT 21", assigned[0]),
                "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' AND status IN ('DRAFT') AND created_at >= now() - interval '1 hour' ORDER BY created_at, id LIMIT 21".into(),
                "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' AND name ILIKE '%c7%' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{org}' AND archived_at IS NULL ORDER BY name, id LIMIT 21".into(),
                "SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{org}' AND archived_at IS NULL AND name ILIKE '%ent 3%' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM tenant_b.entity_data WHERE org_id = '{org}' AND kind = 'PERSONA' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT * FROM tenant_b.entity_data WHERE org_id = '{org}' AND kind = 'PERSONA' ORDER BY name, id LIMIT 21".into(),
                format!("SELECT * FROM tenant_b.entity_data WHERE org_id = '{{org}}' AND kind = 'PERSONA' AND client_id = '{}' ORDER BY name DESC, id DESC LIMIT 21", assigned[1]),
                "SELECT * FROM tenant_b.entity_data WHERE org_id = '{org}' AND kind = 'PERSONA' AND name ILIKE '%ona 4%' ORDER BY name, id LIMIT 21".into(),
                format!("SELECT * FROM public.audit_log WHERE org_id = '{{org}}' AND client_id = '{}' ORDER BY created_at DESC, id DESC LIMIT 21", assigned[0]),
                format!("SELECT * FROM public.audit_log WHERE org_id = '{{org}}' AND client_id = '{}' AND operation = 'updateCampaign' ORDER BY created_at DESC, id DESC LIMIT 21", assigned[1]),
            ],
        ),
        (
            "agency account manager",
            account_manager,
            vec![
                format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
                format!("SELECT count(*) FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list})"),
                format!("SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{{org}}' AND id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
                runs("tenant_b.outputs", &campaign_ids("agency"), &format!(" AND o.client_id = ANY({scope_list})")),
                format!("SELECT * FROM tenant_b.outputs WHERE org_id = '{{org}}' AND client_id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
                format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list}) ORDER BY name, id LIMIT 21"),
                format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list}) AND name ILIKE '%c1%' ORDER BY name, id LIMIT 21"),
                format!("SELECT * FROM tenant_b.entity_data WHERE org_id = '{{org}}' AND kind = 'PERSONA' AND client_id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
            ],
        ),
    ];

    for (who, ctx, queries) in cases {
        let tx = TenantTx::begin_read_only(&db, &ctx).await.unwrap();
        for query in queries {
            let query = query.replace("{org}", &ctx.org_id().to_string());
            // The query really finds rows at this context, so a plan that
            // filtered everything away could not pass for a good one.
            let found =
                strata_tests::scalar(&tx, &format!("SELECT count(*) FROM ({query}) q")).await;
            assert!(found > 0, "{who}: no rows for {query}");
            let plan = strata_tests::plan::explain(&tx, &query).await;
            let text = plan.to_string();
            assert!(
                !text.contains("SubPlan") && !text.contains("InitPlan"),
                "{who}: sub-plan in the plan of {query}:\n{plan:#}"
            );
            let nodes = strata_tests::plan::nodes(&plan);
            let mut used = Vec::new();
            for node in &nodes {
                if let Some(rel) = node["Relation Name"]
                    .as_str()
                    .map(strata_tests::plan::unsharded)
                {
                    assert!(
                        !(tenant_tables.contains(rel) && node["Node Type"] == "Seq Scan"),
                        "{who}: sequential scan of {rel} in {query}:\n{plan:#}"
                    );
                }
                if let Some(index) = node["Index Name"]
                    .as_str()
                    .map(strata_tests::plan::unsharded)
                {
                    used.push(index.to_owned());
                }
            }
            assert!(
                !used.is_empty() && used.iter().all(|i| org_id_indexes.contains(i)),
                "{who}: indexes {used:?} (org_id-leading: {org_id_indexes:?}) in {query}:\n{plan:#}"
            );
        }
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn typed_tables_pin_their_organization_type_with_not_null_a_check_and_a_composite_key() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let typed = rows(
        &conn,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname IN ('public', 'tenant_b')
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_type' AND NOT a.attisdropped)",
    )
    .await;
    assert!(typed.len() >= 11, "typed tables: {typed:?}");
    let problems = findings_of(
        &lint(&conn).await,
        &["key.org_type", "key.untyped", "key.organizations"],
    );
    assert!(problems.is_empty(), "ISOLATION 9: {problems:#?}");
}

#[tokio::test]
async fn tenant_keys_foreign_keys_unique_constraints_and_indexes_all_lead_with_or_include_org_id() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let foreign_keys = rows(
        &conn,
        "SELECT k.conname::text FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND n.nspname IN ('public', 'tenant_b')",
    )
    .await;
    assert!(foreign_keys.len() >= 15, "foreign keys: {foreign_keys:?}");
    let problems = findings_of(&lint(&conn).await, &["key.", "index."]);
    assert!(problems.is_empty(), "ISOLATION 10, 11: {problems:#?}");
}

#[tokio::test]
async fn every_view_runs_as_its_caller_and_no_policy_passes_a_whole_row() {
    use sea_orm::TransactionTrait;
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    // The guards see what they guard against.
    let txn = conn.begin().await.unwrap();
    txn.execute_unprepared(
        "CREATE VIEW public.probe_definer AS SELECT id FROM public.campaigns;
         CREATE VIEW public.probe_invoker WITH (security_invoker = on) AS SELECT id FROM public.campaigns;
         CREATE FUNCTION public.probe_row(public.campaigns) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT true';
         CREATE POLICY probe_fn ON public.campaigns AS RESTRICTIVE USING (public.probe_row(campaigns));
         CREATE POLICY probe_var ON public.personas AS RESTRICTIVE USING (personas IS NOT NULL)",
    )
    .await
    .unwrap();
    let report = audit::lint(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    let views = findings_of(&report, &["view.definer"]);
    assert_eq!(views.len(), 1, "{views:?}");
    assert!(views[0].contains("public.probe_definer"), "{views:?}");
    let mut policies: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.id == "policy.row_argument")
        .map(|f| f.object.clone())
        .collect();
    policies.sort();
    assert_eq!(policies, ["campaigns probe_fn", "personas probe_var"]);

    let problems = findings_of(&lint(&conn).await, &["view.", "policy.row_argument"]);
    assert!(problems.is_empty(), "{problems:#?}");
}
