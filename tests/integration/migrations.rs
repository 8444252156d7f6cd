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

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_an_empty_database() {
    let db = TestDb::empty().await;
    let conn = db.superuser().await;
    assert_eq!(our_tables(&conn).await, 0);

    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 15);

    // The last migration alone: the administration policies (three on each
    // of five tables) come and go.
    assert_eq!(administer_policies(&conn).await, 15);
    Migrator::down(&conn, Some(1)).await.unwrap();
    assert_eq!(administer_policies(&conn).await, 0);
    // The one before: the context helpers lose their SET clause (so
    // policies inline them) and get it back.
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
    assert_eq!(administer_policies(&conn).await, 15);

    Migrator::down(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 0);
    let schemas = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'tenant_b')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(schemas, 0, "down removes the app and tenant_b schemas");

    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(our_tables(&conn).await, 15);
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
}
