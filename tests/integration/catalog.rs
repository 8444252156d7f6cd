//! The catalog says what the isolation layer is; these tests read it, so a
//! new table, policy or grant cannot slip past them.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use strata_tests::TestDb;

async fn rows(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
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
    let unprotected = rows(
        &conn,
        "SELECT c.oid::regclass::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
           AND c.relname <> 'seaql_migrations'
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .await;
    assert!(
        unprotected.is_empty(),
        "tables without ENABLE + FORCE ROW LEVEL SECURITY: {unprotected:?}"
    );
    let owners = rows(
        &conn,
        "SELECT DISTINCT pg_get_userbyid(c.relowner)::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
           AND c.relname <> 'seaql_migrations'",
    )
    .await;
    assert_eq!(owners, vec!["strata_owner".to_owned()]);
}

#[tokio::test]
async fn runtime_roles_are_unprivileged_own_nothing_and_hold_no_dangerous_grants() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let privileged = rows(
        &conn,
        "SELECT rolname::text FROM pg_roles
         WHERE rolname IN ('app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease', 'strata_gateway', 'strata_owner')
           AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreaterole OR rolcreatedb)",
    )
    .await;
    assert!(privileged.is_empty(), "privileged roles: {privileged:?}");
    let owned = rows(
        &conn,
        "SELECT c.oid::regclass::text FROM pg_class c
         WHERE pg_get_userbyid(c.relowner) IN ('app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease', 'strata_gateway')
         UNION ALL
         SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE pg_get_userbyid(p.proowner) IN ('app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease', 'strata_gateway')
         UNION ALL
         SELECT nspname::text FROM pg_namespace
         WHERE pg_get_userbyid(nspowner) IN ('app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease', 'strata_gateway')",
    )
    .await;
    assert!(owned.is_empty(), "runtime roles own {owned:?}");
    let dangerous = rows(
        &conn,
        "SELECT r.rolname || ' ' || priv || ' ' || c.oid::regclass::text
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN (VALUES ('app_sme'), ('app_agency'), ('app_auth'), ('app_maint'), ('app_lease'), ('strata_gateway')) AS r(rolname)
         CROSS JOIN (VALUES ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS p(priv)
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
           AND has_table_privilege(r.rolname, c.oid, priv)",
    )
    .await;
    assert!(dangerous.is_empty(), "dangerous grants: {dangerous:?}");
}

#[tokio::test]
async fn app_sme_has_nothing_in_tenant_b_and_app_agency_cannot_touch_sme_content() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let sme_in_tenant_b = rows(
        &conn,
        "SELECT 'schema usage' WHERE has_schema_privilege('app_sme', 'tenant_b', 'USAGE')
         UNION ALL
         SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'tenant_b' AND c.relkind = 'r'
           AND has_table_privilege('app_sme', c.oid, 'SELECT, INSERT, UPDATE, DELETE')",
    )
    .await;
    assert!(
        sme_in_tenant_b.is_empty(),
        "app_sme reaches {sme_in_tenant_b:?}"
    );
    let agency_on_sme = rows(
        &conn,
        "SELECT t FROM unnest(ARRAY['public.campaigns', 'public.brand_guidelines', 'public.personas', 'public.agent_outputs']) AS t
         WHERE has_table_privilege('app_agency', t, 'INSERT, UPDATE, DELETE')",
    )
    .await;
    assert!(
        agency_on_sme.is_empty(),
        "app_agency can write {agency_on_sme:?}"
    );
}

#[tokio::test]
async fn no_policy_has_a_subselect_or_a_null_escape_and_helpers_are_stable() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let policies = rows(
        &conn,
        "SELECT schemaname || '.' || tablename || ' ' || policyname || ': ' || coalesce(qual, '') || ' / ' || coalesce(with_check, '')
         FROM pg_policies WHERE schemaname IN ('public', 'tenant_b')",
    )
    .await;
    assert!(
        policies.len() >= 20,
        "expected policies, found {}",
        policies.len()
    );
    for p in &policies {
        let lower = p.to_lowercase();
        assert!(!lower.contains("select"), "sub-select in policy {p}");
        assert!(!lower.contains("exists"), "EXISTS in policy {p}");
        assert!(!lower.contains("is null"), "NULL escape in policy {p}");
    }
    // The context helpers must be inlined into the policies (a function
    // call per row is what made RLS expensive): STABLE SQL, no SET clause,
    // and no dependence on the search_path (every call schema-qualified).
    let not_inlinable = rows(
        &conn,
        "SELECT p.oid::regprocedure::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = 'app' AND p.proname <> 'begin_request'
           AND (p.provolatile <> 's' OR p.prosecdef OR l.lanname <> 'sql'
                OR p.proconfig IS NOT NULL OR p.prosrc ~ '(^|[^.])current_setting')",
    )
    .await;
    assert!(
        not_inlinable.is_empty(),
        "helpers that are not inlinable STABLE SQL with schema-qualified bodies: {not_inlinable:?}"
    );
    let plan = {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let txn = conn.begin().await.unwrap();
        txn.execute_unprepared(
            "SET LOCAL app.org_id = '00000000-0000-0000-0000-000000000001'; \
             SET LOCAL app.all_clients = 'false'; SET LOCAL ROLE app_agency",
        )
        .await
        .unwrap();
        let lines = txn
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM tenant_b.campaigns \
                 WHERE org_id = '00000000-0000-0000-0000-000000000001'",
            ))
            .await
            .unwrap();
        let plan: Vec<String> = lines
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        txn.rollback().await.unwrap();
        plan.join("\n")
    };
    assert!(
        plan.contains("current_setting")
            && [
                "app.current_org_id(",
                "app.current_client_ids(",
                "app.all_clients("
            ]
            .iter()
            .all(|call| !plan.contains(call)),
        "the policies' helpers were not inlined:\n{plan}"
    );
    let definers = rows(
        &conn,
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('app', 'public', 'tenant_b') AND p.prosecdef",
    )
    .await;
    assert!(
        definers.is_empty(),
        "SECURITY DEFINER functions: {definers:?}"
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
    expected.sort();
    assert_eq!(columns, expected);
    let whole_tables = rows(
        &conn,
        "SELECT grantee || ' ' || privilege_type || ' ' || table_schema || '.' || table_name
         FROM information_schema.table_privileges WHERE grantee IN ('app_maint', 'app_lease')",
    )
    .await;
    assert!(
        whole_tables.is_empty(),
        "table-wide privileges: {whole_tables:?}"
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
        expected.push(format!(
            "{table} renew_unfinished_runs UPDATE app_lease: {unfinished} / \
             ((status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])) AND (heartbeat_at = now()))"
        ));
        expected.push(format!(
            "{table} unfinished_runs SELECT app_maint: \
             (status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text, 'FAILED'::text])) / "
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

/// Every node of an `EXPLAIN (FORMAT JSON)` plan, depth first.
fn plan_nodes(plan: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    let mut stack = vec![&plan[0]["Plan"]];
    while let Some(node) = stack.pop() {
        out.push(node);
        if let Some(children) = node["Plans"].as_array() {
            stack.extend(children);
        }
    }
    out
}

/// Seeds `orgs` SMEs and `orgs` agencies, each with `per_org` campaigns and
/// one run per campaign (agencies: ten clients, campaigns spread over
/// them), as the superuser, and refreshes the planner's statistics. Ids are
/// derived from the numbers, so the caller can name any of them.
async fn seed_volume(su: &DatabaseConnection, orgs: u32, per_org: u32) {
    su.execute_unprepared(&format!(
        "INSERT INTO public.organizations (id, type, name, slug)
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
         ANALYZE public.organizations, public.campaigns, public.agent_outputs,
                 tenant_b.workspace_entities, tenant_b.campaigns, tenant_b.outputs;"
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
    use strata_domain::context::Resolution;
    use strata_domain::{Actor, ClientId, ClientScope, OrgId, OrgType, Role, TenantContext};
    use strata_persistence::TenantTx;

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
    let context = |org_id, org_type, role, clients| {
        TenantContext::resolved(Resolution {
            org_id,
            org_type,
            actor: Actor::User(strata_domain::UserId::generate()),
            role,
            clients,
            read_only: false,
            request_id: "plan".into(),
        })
    };
    let runs = |table: &str, ids: &str, scope: &str| {
        format!(
            "SELECT o.* FROM unnest({ids}) AS c(id) CROSS JOIN LATERAL (
               SELECT * FROM {table} o WHERE o.org_id = '{{org}}' AND o.campaign_id = c.id
               AND o.status = 'SUCCEEDED'{scope} ORDER BY o.created_at DESC, o.id DESC LIMIT 11) o"
        )
    };
    let scope_list = format!("'{{{},{}}}'::uuid[]", assigned[0], assigned[1]);
    let cases: Vec<(&str, TenantContext, Vec<String>)> = vec![
        (
            "SME owner",
            context(sme, OrgType::Sme, Role::Owner, ClientScope::All),
            vec![
                "SELECT * FROM public.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM public.campaigns WHERE org_id = '{org}'".into(),
                runs("public.agent_outputs", &campaign_ids("sme"), ""),
            ],
        ),
        (
            "agency owner",
            context(agency, OrgType::Agency, Role::Owner, ClientScope::All),
            vec![
                "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM tenant_b.campaigns WHERE org_id = '{org}'".into(),
                "SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".into(),
                "SELECT count(*) FROM tenant_b.workspace_entities WHERE org_id = '{org}'".into(),
                runs("tenant_b.outputs", &campaign_ids("agency"), ""),
            ],
        ),
        (
            "agency account manager",
            context(
                agency,
                OrgType::Agency,
                Role::AccountManager,
                ClientScope::Only(assigned.to_vec()),
            ),
            vec![
                format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
                format!("SELECT count(*) FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY({scope_list})"),
                format!("SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{{org}}' AND id = ANY({scope_list}) ORDER BY created_at DESC, id DESC LIMIT 21"),
                runs("tenant_b.outputs", &campaign_ids("agency"), &format!(" AND o.client_id = ANY({scope_list})")),
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
            let plan: serde_json::Value = tx
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("EXPLAIN (FORMAT JSON) {query}"),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index(0)
                .unwrap();
            let text = plan.to_string();
            assert!(
                !text.contains("SubPlan") && !text.contains("InitPlan"),
                "{who}: sub-plan in the plan of {query}:\n{plan:#}"
            );
            let nodes = plan_nodes(&plan);
            let mut used = Vec::new();
            for node in &nodes {
                if let Some(rel) = node["Relation Name"].as_str() {
                    assert!(
                        !(tenant_tables.contains(rel) && node["Node Type"] == "Seq Scan"),
                        "{who}: sequential scan of {rel} in {query}:\n{plan:#}"
                    );
                }
                if let Some(index) = node["Index Name"].as_str() {
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
