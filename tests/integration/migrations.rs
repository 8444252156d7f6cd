use sea_orm::{ConnectionTrait, DbBackend, Statement};
use strata_persistence::{Migrator, MigratorTrait};
use strata_tests::TestDb;

async fn our_tables(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'tenant_b') AND tablename <> 'seaql_migrations'",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn lease_columns(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'heartbeat_at' \
         AND table_schema || '.' || table_name IN ('public.agent_outputs', 'tenant_b.outputs')",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn gateway_reads_migrations(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_class WHERE relname = 'seaql_migrations' \
         AND has_table_privilege('strata_gateway', oid, 'SELECT')",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn administer_policies(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_policies WHERE policyname LIKE 'administer\\_%'",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn administer_reads(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_policies WHERE policyname = 'administer_select' \
         AND permissive = 'RESTRICTIVE' AND cmd = 'SELECT' \
         AND schemaname || '.' || tablename IN ('public.audit_log', 'public.api_keys')",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn reporting_views(conn: &sea_orm::DatabaseConnection) -> i64 {
    strata_tests::scalar(
        conn,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'reporting' AND c.relkind = 'v' \
         AND c.reloptions @> ARRAY['security_invoker=on'] \
         AND has_table_privilege('app_reporting', c.oid, 'SELECT')",
    )
    .await
}

/// Policies and grants of the reporting roles.
async fn reporting_reach(conn: &sea_orm::DatabaseConnection) -> i64 {
    strata_tests::scalar(
        conn,
        "SELECT (SELECT count(*) FROM pg_policies \
                 WHERE roles && ARRAY['app_reporting', 'app_reporting_client', 'strata_owner']::name[]) \
              + (SELECT count(*) FROM information_schema.column_privileges WHERE grantee = 'app_reporting') \
              + (SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'tenant_b') \
                 AND has_schema_privilege('app_reporting', oid, 'USAGE'))",
    )
    .await
}

async fn pinned_helpers(conn: &sea_orm::DatabaseConnection) -> i64 {
    conn.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'app' AND p.proname <> 'begin_request' AND p.proconfig IS NOT NULL",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

/// What the migrations build, by name and definition (never by oid): tables
/// with their row-level security flags and owners, columns, policies with
/// their expressions, constraints, indexes, functions, and every grant on
/// our schemas, tables, columns and functions.
async fn fingerprint(conn: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = "
        WITH ours AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('public', 'tenant_b', 'app', 'reporting'))
        SELECT 'schema ' || nspname || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE oid IN (SELECT oid FROM ours)
        UNION ALL
        SELECT 'table ' || c.oid::regclass::text || ' ' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
               || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity || ' acl=' || coalesce(c.relacl::text, '')
        FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ours) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relname <> 'seaql_migrations'
        UNION ALL
        SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
               || ' acl=' || coalesce(a.attacl::text, '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace IN (SELECT oid FROM ours) AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped AND c.relname <> 'seaql_migrations'
        UNION ALL
        SELECT 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || permissive || ' ' || cmd
               || ' ' || array_to_string(roles, ',') || ' using=' || coalesce(qual, '') || ' check=' || coalesce(with_check, '')
        FROM pg_policies WHERE schemaname IN ('public', 'tenant_b', 'app')
        UNION ALL
        SELECT 'constraint ' || k.conrelid::regclass::text || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
        FROM pg_constraint k WHERE k.connamespace IN (SELECT oid FROM ours)
          AND k.conrelid <> 0 AND k.conrelid::regclass::text <> 'seaql_migrations'
        UNION ALL
        SELECT 'index ' || schemaname || '.' || indexname || ' ' || indexdef FROM pg_indexes
        WHERE schemaname IN ('public', 'tenant_b', 'app') AND tablename <> 'seaql_migrations'
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure::text || ' owner=' || pg_get_userbyid(p.proowner)
               || ' acl=' || coalesce(p.proacl::text, '') || ' ' || pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ours)";
    let mut items: Vec<String> = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_an_empty_database() {
    let db = TestDb::empty().await;
    let conn = db.superuser().await;
    assert_eq!(our_tables(&conn).await, 0);

    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 18);
    let first = fingerprint(&conn).await;
    for (kind, at_least) in [
        ("policy ", 20),
        ("constraint ", 20),
        ("index ", 20),
        ("function ", 6),
        ("column ", 50),
    ] {
        assert!(
            first.iter().filter(|i| i.starts_with(kind)).count() >= at_least,
            "the fingerprint misses {kind}entries: {first:#?}"
        );
    }
    assert!(
        first
            .iter()
            .any(|i| i.starts_with("table ") && i.contains("app_sme="))
    );

    // Newest first, each migration alone. Data exports and their files
    // come and go.
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(our_tables(&conn).await, 16);
    // Clients have branding of their own, and no longer.
    let branding = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tenant_b' \
         AND table_name = 'workspace_entities' AND column_name = 'branding'";
    assert_eq!(strata_tests::scalar(&conn, branding).await, 1);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, branding).await, 0);
    // Organizations keep runs for a
    // number of days, which the maintenance role may read, and no longer.
    let retention = "SELECT count(*) FROM information_schema.column_privileges \
         WHERE table_name = 'organizations' AND grantee = 'app_maint'";
    assert_eq!(strata_tests::scalar(&conn, retention).await, 3);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, retention).await, 0);
    // Keys limited to several clients
    // with a rate of their own, and no longer.
    let scopes = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name = 'api_keys' AND column_name IN ('client_ids', 'rate_limit_per_minute')";
    assert_eq!(strata_tests::scalar(&conn, scopes).await, 2);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, scopes).await, 0);
    // Teams: invitations, members'
    // names and e-mails, the MFA policy and revoked sessions come and go.
    let teams = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
         AND column_name IN ('require_mfa', 'sessions_valid_after')";
    assert_eq!(strata_tests::scalar(&conn, teams).await, 3);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, teams).await, 0);
    assert_eq!(our_tables(&conn).await, 15);
    // A rotated API key keeps its previous hash, and no longer.
    let rotation = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name = 'api_keys' AND column_name = 'previous_key_hash'";
    assert_eq!(strata_tests::scalar(&conn, rotation).await, 1);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, rotation).await, 0);
    // Organizations have a quota
    // column, which only the operator's role may update, and no longer.
    let quota = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name = 'organizations' AND column_name = 'monthly_token_quota'";
    let narrowed = "SELECT count(*) FROM information_schema.column_privileges \
         WHERE table_name = 'organizations' AND grantee = 'app_sme' AND privilege_type = 'UPDATE'";
    assert_eq!(strata_tests::scalar(&conn, quota).await, 1);
    assert_eq!(strata_tests::scalar(&conn, narrowed).await, 3);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, quota).await, 0);
    assert!(strata_tests::scalar(&conn, narrowed).await > 3);
    // Agencies' administrators may
    // delete their clients' audit rows, and no longer.
    let erase = "SELECT count(*) FROM pg_policies WHERE tablename = 'audit_log' AND cmd = 'DELETE'";
    assert_eq!(strata_tests::scalar(&conn, erase).await, 2);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, erase).await, 1);
    // The list orders' indexes go,
    // and nothing else (the extensions stay, with their schema).
    let with_list_orders = fingerprint(&conn).await;
    Migrator::down(&conn, Some(1)).await.unwrap();
    let with_run_lists = fingerprint(&conn).await;
    let gone: Vec<&String> = with_list_orders
        .iter()
        .filter(|i| !with_run_lists.contains(i))
        .collect();
    assert!(
        gone.len() == 17 && gone.iter().all(|i| i.starts_with("index ")),
        "{gone:#?}"
    );
    assert!(with_run_lists.iter().all(|i| with_list_orders.contains(i)));
    // The run lists' indexes go, and nothing else.
    Migrator::down(&conn, Some(1)).await.unwrap();
    let before_distribution = fingerprint(&conn).await;
    let gone: Vec<&String> = with_run_lists
        .iter()
        .filter(|i| !before_distribution.contains(i))
        .collect();
    assert!(
        gone.len() == 3 && gone.iter().all(|i| i.starts_with("index ")),
        "{gone:#?}"
    );
    assert!(
        before_distribution
            .iter()
            .all(|i| with_run_lists.contains(i))
    );
    // Distribution does nothing on one PostgreSQL, either way (`citus.rs`
    // runs it on Citus).
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(fingerprint(&conn).await, before_distribution);
    // The reporting views, the tenant context of reporting logins and what
    // their roles may read come and go.
    assert_eq!(reporting_views(&conn).await, 7);
    assert!(reporting_reach(&conn).await > 40);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(reporting_views(&conn).await, 0);
    assert_eq!(reporting_reach(&conn).await, 0);
    // Read-only contexts may not write the token usage, and may once that
    // is undone.
    let usage_policies = "SELECT count(*) FROM pg_policies WHERE schemaname = 'public' \
         AND tablename = 'token_usage' AND policyname LIKE 'writable_%'";
    assert_eq!(strata_tests::scalar(&conn, usage_policies).await, 3);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(strata_tests::scalar(&conn, usage_policies).await, 0);
    // Reading the audit log and the API
    // keys takes an administering context, and no longer once that is
    // undone.
    assert_eq!(administer_reads(&conn).await, 2);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(administer_reads(&conn).await, 0);
    // The gateway's login role may read which migrations ran, and no
    // longer once that is undone.
    assert_eq!(gateway_reads_migrations(&conn).await, 1);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(gateway_reads_migrations(&conn).await, 0);
    // The administration policies (three on each of five tables) come and go.
    assert_eq!(administer_policies(&conn).await, 15);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(administer_policies(&conn).await, 0);
    // The context helpers lose their SET clause (so policies inline them)
    // and get it back.
    assert_eq!(pinned_helpers(&conn).await, 0);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(pinned_helpers(&conn).await, 6);
    // The one before: run leases are columns and grants.
    assert_eq!(lease_columns(&conn).await, 2);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(lease_columns(&conn).await, 0);
    assert_eq!(our_tables(&conn).await, 15);
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(lease_columns(&conn).await, 2);
    assert_eq!(pinned_helpers(&conn).await, 0);
    assert_eq!(gateway_reads_migrations(&conn).await, 1);
    assert_eq!(administer_policies(&conn).await, 29);
    assert_eq!(administer_reads(&conn).await, 2);
    assert_eq!(reporting_views(&conn).await, 7);

    Migrator::down(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 0);
    let schemas = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'tenant_b', 'reporting')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(
        schemas, 0,
        "down removes the app, tenant_b and reporting schemas"
    );

    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 18);
    let second = fingerprint(&conn).await;
    let lost: Vec<_> = first.iter().filter(|i| !second.contains(i)).collect();
    let gained: Vec<_> = second.iter().filter(|i| !first.contains(i)).collect();
    assert!(
        lost.is_empty() && gained.is_empty(),
        "the second up differs from the first:\nonly after the first: {lost:#?}\nonly after the second: {gained:#?}"
    );
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
}
