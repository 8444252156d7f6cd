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
         FROM pg_policies WHERE schemaname IN ('public', 'tenant_b', 'app')",
    )
    .await;
    assert!(
        policies.len() >= 20,
        "expected policies, found {}",
        policies.len()
    );
    for p in &policies {
        // The expressions, after the table and policy name.
        let lower = p
            .split_once(": ")
            .map_or(p.as_str(), |(_, e)| e)
            .to_lowercase();
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

/// Tables of ours with an `org_id` column: the tenant tables.
const TENANT_TABLES: &str = "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)";

/// Each foreign key of a tenant table with its column pairs, `child>parent`.
const FOREIGN_KEYS: &str = "SELECT k.conname, k.conrelid, k.confrelid,
        array(SELECT a.attname::text || '>' || b.attname::text
              FROM unnest(k.conkey, k.confkey) AS u(c, p)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.c
              JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = u.p) AS pairs
    FROM pg_constraint k WHERE k.contype = 'f'";

#[tokio::test]
async fn typed_tables_pin_their_organization_type_with_not_null_a_check_and_a_composite_key() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let typed = rows(
        &conn,
        &format!(
            "SELECT c.oid::regclass::text FROM pg_class c
             WHERE c.oid IN ({TENANT_TABLES})
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_type' AND NOT a.attisdropped)
             ORDER BY 1"
        ),
    )
    .await;
    // Every tenant table holds one organization's typed content, except
    // the organization-level ledgers both types share; a new table must
    // either carry org_type or be named here.
    let untyped = rows(
        &conn,
        &format!(
            "SELECT c.oid::regclass::text FROM pg_class c
             WHERE c.oid IN ({TENANT_TABLES})
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_type' AND NOT a.attisdropped)
             ORDER BY 1"
        ),
    )
    .await;
    assert_eq!(
        untyped,
        ["audit_log", "token_usage"],
        "tenant tables without org_type"
    );
    assert!(typed.len() >= 11, "typed tables: {typed:?}");
    let unique_id_type = rows(
        &conn,
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.organizations'::regclass
           AND contype IN ('u', 'p') AND pg_get_constraintdef(oid) = 'UNIQUE (id, type)'",
    )
    .await;
    assert_eq!(
        unique_id_type.len(),
        1,
        "organizations needs UNIQUE (id, type)"
    );
    let problems = rows(
        &conn,
        &format!(
            "WITH fk AS ({FOREIGN_KEYS})
             SELECT c.oid::regclass::text || ': ' || v.problem
             FROM pg_class c
             CROSS JOIN LATERAL (VALUES
               ('org_type is nullable',
                NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = c.oid AND attname = 'org_type')),
               ('no CHECK on org_type naming SME or AGENCY',
                NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                            WHERE k.conrelid = c.oid AND k.contype = 'c' AND a.attname = 'org_type'
                              AND pg_get_constraintdef(k.oid) ~ '''(SME|AGENCY)''')),
               ('no foreign key (org_id, org_type) -> organizations (id, type)',
                NOT EXISTS (SELECT 1 FROM fk WHERE fk.conrelid = c.oid AND fk.confrelid = 'public.organizations'::regclass
                              AND fk.pairs @> ARRAY['org_id>id', 'org_type>type'] AND cardinality(fk.pairs) = 2))
             ) AS v(problem, bad)
             WHERE v.bad AND c.oid IN ({TENANT_TABLES})
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_type' AND NOT a.attisdropped)"
        ),
    )
    .await;
    assert!(problems.is_empty(), "ISOLATION 9: {problems:?}");
}

#[tokio::test]
async fn tenant_keys_foreign_keys_unique_constraints_and_indexes_all_lead_with_or_include_org_id() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let tables = rows(
        &conn,
        &format!("SELECT oid::regclass::text FROM pg_class WHERE oid IN ({TENANT_TABLES})"),
    )
    .await;
    assert!(tables.len() >= 13, "tenant tables: {tables:?}");
    let keys = rows(
        &conn,
        &format!(
            "SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid IN ({TENANT_TABLES})
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                               WHERE k.conrelid = c.oid AND k.contype = 'p' AND a.attname = 'org_id')"
        ),
    )
    .await;
    assert!(
        keys.is_empty(),
        "primary keys not leading with org_id: {keys:?}"
    );
    let has = |rel: &str, col: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = {rel} AND a.attname = '{col}' AND NOT a.attisdropped)"
        )
    };
    let foreign_keys = rows(
        &conn,
        &format!("WITH fk AS ({FOREIGN_KEYS}) SELECT conname::text FROM fk WHERE conrelid IN ({TENANT_TABLES})"),
    )
    .await;
    assert!(foreign_keys.len() >= 15, "foreign keys: {foreign_keys:?}");
    let loose = rows(
        &conn,
        &format!(
            "WITH fk AS ({FOREIGN_KEYS})
             SELECT conrelid::regclass::text || ' ' || conname || ' (' || array_to_string(pairs, ', ') || ')' FROM fk
             WHERE conrelid IN ({TENANT_TABLES}) AND (
                   (confrelid IN ({TENANT_TABLES}) AND NOT 'org_id>org_id' = ANY (pairs))
                OR (confrelid = 'public.organizations'::regclass AND NOT 'org_id>id' = ANY (pairs))
                OR (confrelid IN ({TENANT_TABLES}) AND {child_client} AND {parent_client}
                    AND NOT 'client_id>client_id' = ANY (pairs)))",
            child_client = has("conrelid", "client_id"),
            parent_client = has("confrelid", "client_id"),
        ),
    )
    .await;
    assert!(
        loose.is_empty(),
        "foreign keys to a tenant's rows without its org_id (or client_id): {loose:?}"
    );
    let unique = rows(
        &conn,
        &format!(
            "SELECT x.indexrelid::regclass::text FROM pg_index x
             WHERE x.indisunique AND x.indrelid IN ({TENANT_TABLES})
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = x.indrelid AND a.attname = 'org_id'
                               AND a.attnum = ANY (x.indkey::int2[]))"
        ),
    )
    .await;
    assert!(
        unique.is_empty(),
        "unique constraints or indexes without org_id: {unique:?}"
    );
    let unindexed = rows(
        &conn,
        &format!(
            "SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid IN ({TENANT_TABLES})
               AND NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                               WHERE x.indrelid = c.oid AND a.attname = 'org_id')"
        ),
    )
    .await;
    assert!(
        unindexed.is_empty(),
        "tenant tables without an index leading with org_id: {unindexed:?}"
    );
}

/// Views in our schemas that do not run as the caller.
const DEFINER_VIEWS: &str = "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND n.nspname IN ('public', 'tenant_b', 'app', 'reporting')
      AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) o
                      WHERE lower(o) IN ('security_invoker=on', 'security_invoker=true', 'security_invoker=1', 'security_invoker=yes'))";

/// Policies that hand a whole row to anything: a whole-row variable in
/// their expressions, or a call to a function taking a row or a
/// polymorphic argument.
const ROW_ARGUMENT_POLICIES: &str = "SELECT pol.polrelid::regclass::text || ' ' || pol.polname
    FROM pg_policy pol
    WHERE coalesce(pol.polqual::text, '') ~ ':varattno 0 ' OR coalesce(pol.polwithcheck::text, '') ~ ':varattno 0 '
       OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                  CROSS JOIN LATERAL unnest(p.proargtypes::oid[]) AS arg(t) JOIN pg_type ty ON ty.oid = arg.t
                  WHERE d.classid = 'pg_policy'::regclass AND d.objid = pol.oid AND d.refclassid = 'pg_proc'::regclass
                    AND (ty.typtype IN ('c', 'p') OR ty.typrelid <> 0))";

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
    let views = rows_in(&txn, DEFINER_VIEWS).await;
    assert_eq!(views, ["probe_definer"]);
    let mut policies = rows_in(&txn, ROW_ARGUMENT_POLICIES).await;
    policies.sort();
    assert_eq!(policies, ["campaigns probe_fn", "personas probe_var"]);
    txn.rollback().await.unwrap();

    let views = rows(&conn, DEFINER_VIEWS).await;
    assert!(
        views.is_empty(),
        "views without security_invoker = on: {views:?}"
    );
    let policies = rows(&conn, ROW_ARGUMENT_POLICIES).await;
    assert!(
        policies.is_empty(),
        "policies passing a whole row: {policies:?}"
    );
}

async fn rows_in(conn: &impl ConnectionTrait, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The reporting roles and every reporting login: NOLOGIN roles (logins
/// only log in), no attribute beyond that, members of no runtime role, no
/// write anywhere, SELECT only on the views and on the columns they read,
/// and no function but the reporting helpers.
#[tokio::test]
async fn reporting_roles_and_logins_read_the_views_and_nothing_else() {
    use strata_persistence::reporting::{self, Scope};
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let pool = db.pool(1).await;
    conn.execute_unprepared(
        "INSERT INTO public.organizations (id, type, name, slug) VALUES
           ('00000000-0000-0000-0000-00000000000a', 'AGENCY', 'a', 'catalog-a');
         INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES
           ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000c', 'c', 'c')",
    )
    .await
    .unwrap();
    let org_id = strata_domain::OrgId::from_uuid(uuid::Uuid::from_u128(0xa));
    let client_id = strata_domain::ClientId::from_uuid(uuid::Uuid::from_u128(0xc));
    for scope in [
        Scope {
            org_id,
            client_id: None,
        },
        Scope {
            org_id,
            client_id: Some(client_id),
        },
    ] {
        reporting::issue(&pool, scope, false).await.unwrap();
    }
    // Everything that can hold the reporting roles' privileges.
    let readers = "SELECT r.rolname FROM pg_roles r
         WHERE pg_has_role(r.oid, 'app_reporting', 'USAGE') AND NOT r.rolsuper";
    let logins = rows(
        &conn,
        "SELECT l.login::text FROM app.reporting_logins l ORDER BY 1",
    )
    .await;
    assert_eq!(logins.len(), 2);

    let roles = rows(
        &conn,
        "SELECT rolname::text || ' ' || rolcanlogin FROM pg_roles
         WHERE rolname IN ('app_reporting', 'app_reporting_client')
           AND NOT (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)
         ORDER BY 1",
    )
    .await;
    assert_eq!(roles, ["app_reporting false", "app_reporting_client false"]);
    let bad_logins = rows(
        &conn,
        "SELECT l.login::text FROM app.reporting_logins l JOIN pg_roles r ON r.rolname = l.login
         WHERE NOT r.rolcanlogin OR r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolcreatedb
            OR r.rolreplication OR NOT r.rolinherit
            OR (SELECT array_agg(g.rolname::text) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                WHERE m.member = r.oid)
               IS DISTINCT FROM ARRAY[CASE WHEN l.client_id IS NULL THEN 'app_reporting' ELSE 'app_reporting_client' END]",
    )
    .await;
    assert!(
        bad_logins.is_empty(),
        "logins beyond reading: {bad_logins:?}"
    );

    // Members of no runtime role (so `SET ROLE` to one fails), and no
    // runtime role or gateway a member of theirs.
    let crossed = rows(
        &conn,
        &format!(
            "SELECT r.rolname || ' ' || t.rolname FROM ({readers}) r
             CROSS JOIN (VALUES ('app_sme'), ('app_agency'), ('app_auth'), ('app_maint'), ('app_lease'),
                                ('strata_gateway'), ('strata_owner')) AS t(rolname)
             WHERE pg_has_role(r.rolname, t.rolname, 'MEMBER') OR pg_has_role(t.rolname, 'app_reporting', 'MEMBER')"
        ),
    )
    .await;
    assert!(crossed.is_empty(), "roles crossed: {crossed:?}");

    // No write, no dangerous privilege, on anything of ours.
    let writes = rows(
        &conn,
        &format!(
            "SELECT r.rolname || ' ' || p.priv || ' ' || c.oid::regclass::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN ({readers}) r
             CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS p(priv)
             WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname IN ('public', 'tenant_b', 'app', 'reporting')
               AND c.relname <> 'seaql_migrations'
               AND (has_table_privilege(r.rolname, c.oid, p.priv)
                    OR (p.priv IN ('INSERT', 'UPDATE', 'REFERENCES')
                        AND has_any_column_privilege(r.rolname, c.oid, p.priv)))"
        ),
    )
    .await;
    assert!(writes.is_empty(), "writes: {writes:?}");

    // Reads: the views whole; of the tables, only what the views show.
    let mut whole = rows(
        &conn,
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'tenant_b', 'app', 'reporting') AND c.relkind IN ('r', 'p', 'v')
           AND has_table_privilege('app_reporting', c.oid, 'SELECT')",
    )
    .await;
    whole.sort();
    assert_eq!(
        whole,
        [
            "reporting.agent_outputs",
            "reporting.agent_runs",
            "reporting.brand_guidelines",
            "reporting.campaigns",
            "reporting.clients",
            "reporting.personas",
            "reporting.usage"
        ]
    );
    let mut tables = rows(
        &conn,
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'tenant_b', 'app') AND c.relkind IN ('r', 'p')
           AND has_any_column_privilege('app_reporting', c.oid, 'SELECT')",
    )
    .await;
    tables.sort();
    assert_eq!(
        tables,
        [
            "agent_outputs",
            "app.reporting_logins",
            "brand_guidelines",
            "campaigns",
            "personas",
            "tenant_b.campaigns",
            "tenant_b.entity_data",
            "tenant_b.outputs",
            "tenant_b.workspace_entities"
        ]
    );
    let hidden = rows(
        &conn,
        "SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.column_privileges
         WHERE grantee = 'app_reporting'
           AND column_name IN ('created_by', 'heartbeat_at', 'org_type', 'password_set_at')",
    )
    .await;
    assert!(hidden.is_empty(), "columns no view shows: {hidden:?}");

    // Functions: the reporting helpers, nothing of the gateway's.
    let mut functions = rows(
        &conn,
        &format!(
            "SELECT DISTINCT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             CROSS JOIN ({readers}) r
             WHERE n.nspname IN ('public', 'tenant_b', 'app', 'reporting')
               AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')"
        ),
    )
    .await;
    functions.sort();
    assert_eq!(
        functions,
        ["app.reporting_client_id()", "app.reporting_org_id()"]
    );
    // Policies naming the reporting roles only read.
    let policies = rows(
        &conn,
        "SELECT schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd FROM pg_policies
         WHERE roles && ARRAY['app_reporting', 'app_reporting_client']::name[] AND cmd <> 'SELECT'",
    )
    .await;
    assert!(policies.is_empty(), "{policies:?}");
    for scope in [
        Scope {
            org_id,
            client_id: None,
        },
        Scope {
            org_id,
            client_id: Some(client_id),
        },
    ] {
        reporting::revoke(&pool, scope).await.unwrap();
    }
}
