//! The database layer alone keeps tenants apart: these tests speak SQL as the
//! runtime roles, with and without context, and write rows no code path
//! would, to show the constraints and policies stop them.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait, Value,
};
use strata_domain::{ClientScope, OrgId};
use strata_persistence::context::resolve_for;
use strata_persistence::repo::campaigns::CampaignFilter;
use strata_persistence::repo::{PageRequest, campaigns, clients};
use strata_persistence::{Db, TenantTx};
use strata_tests::TestDb;
use strata_tests::scalar;
use strata_tests::world::World;
use uuid::Uuid;

async fn begin_as(
    db: &Db,
    role: &str,
    org: Option<OrgId>,
    clients: &[Uuid],
    all_clients: bool,
) -> DatabaseTransaction {
    let txn = db.raw().begin().await.unwrap();
    let values: Vec<Value> = vec![
        role.into(),
        org.map(|o| o.as_uuid()).into(),
        Option::<Uuid>::None.into(),
        clients.to_vec().into(),
        all_clients.into(),
        true.into(),
        Option::<String>::None.into(),
        "test".into(),
    ];
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.begin_request($1, $2, $3, $4, $5, $6, $7, $8)",
        values,
    ))
    .await
    .unwrap();
    txn
}

/// Tenant tables the role may read, from the catalog.
async fn readable_tables(su: &DatabaseConnection, role: &str) -> Vec<(String, bool)> {
    su.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT c.oid::regclass::text,
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname IN ('public', 'tenant_b') AND c.relname <> 'seaql_migrations'
           AND has_schema_privilege($1, n.oid, 'USAGE') AND has_table_privilege($1, c.oid, 'SELECT')
         ORDER BY 1",
        [role.into()],
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
    .collect()
}

async fn setup() -> (TestDb, Db, DatabaseConnection, World) {
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(4).await;
    let su = test_db.superuser().await;
    let world = World::seed(&db, &su).await;
    (test_db, db, su, world)
}

#[tokio::test]
async fn each_runtime_role_with_one_orgs_context_sees_no_row_of_another_org_in_any_table() {
    let (_t, db, su, w) = setup().await;
    for (role, org) in [("app_sme", w.sme1.id), ("app_agency", w.agency1.id)] {
        let tables = readable_tables(&su, role).await;
        assert!(tables.len() >= 6, "{role} reads {tables:?}");
        let txn = begin_as(&db, role, Some(org), &[], true).await;
        let mut own_rows = 0;
        for (table, has_org_id) in &tables {
            let key = if *has_org_id { "org_id" } else { "id" };
            if table == "users" {
                continue;
            }
            let others = scalar(
                &txn,
                &format!("SELECT count(*) FROM {table} WHERE {key} <> '{org}'"),
            )
            .await;
            assert_eq!(
                others, 0,
                "{role} as {org} sees other orgs' rows in {table}"
            );
            own_rows += scalar(&txn, &format!("SELECT count(*) FROM {table}")).await;
        }
        assert!(own_rows > 5, "{role} should see its own rows");
        // The database really holds other tenants' rows.
        let all = scalar(&su, "SELECT count(*) FROM public.organizations").await;
        assert!(all >= 4);
        txn.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn without_context_every_table_is_empty_and_writes_fail_on_fresh_and_reused_connections() {
    let (test_db, _db, su, w) = setup().await;
    // A pool of one connection: the second round reuses the connection the
    // context-bearing transaction ran on.
    let one = test_db.pool(1).await;
    for round in ["fresh", "after a request with context"] {
        for role in ["app_sme", "app_agency"] {
            let txn = one.raw().begin().await.unwrap();
            txn.execute_unprepared(&format!("SET LOCAL ROLE {role}"))
                .await
                .unwrap();
            for (table, _) in readable_tables(&su, role).await {
                let n = scalar(&txn, &format!("SELECT count(*) FROM {table}")).await;
                assert_eq!(
                    n, 0,
                    "{role} without context ({round}) sees rows in {table}"
                );
            }
            let insert = if role == "app_sme" {
                format!(
                    "INSERT INTO public.campaigns (org_id, id, name) VALUES ('{}', gen_random_uuid(), 'x')",
                    w.sme1.id
                )
            } else {
                format!(
                    "INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES ('{}', gen_random_uuid(), 'x', 'x')",
                    w.agency1.id
                )
            };
            let err = txn.execute_unprepared(&insert).await.unwrap_err();
            assert!(
                err.to_string().contains("row-level security"),
                "{role} insert without context: {err}"
            );
            txn.rollback().await.unwrap();
        }
        let txn = begin_as(&one, "app_sme", Some(w.sme1.id), &[], true).await;
        assert!(scalar(&txn, "SELECT count(*) FROM public.campaigns").await > 0);
        txn.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_pool_of_one_connection_serves_a_b_nobody_and_a_after_an_error_each_its_own_rows() {
    let (test_db, _db, _su, w) = setup().await;
    let one = test_db.pool(1).await;
    let ctx_a = resolve_for(&one, w.sme1.owner, Some(w.sme1.id), "a")
        .await
        .unwrap();
    let ctx_b = resolve_for(&one, w.sme2.owner, Some(w.sme2.id), "b")
        .await
        .unwrap();
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let ids = |p: &strata_persistence::repo::Page<strata_domain::model::Campaign>| {
        p.items.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let mut expected_a = w.sme1.campaigns.clone();
    expected_a.reverse();
    let mut expected_b = w.sme2.campaigns.clone();
    expected_b.reverse();

    let tx = TenantTx::begin(&one, &ctx_a).await.unwrap();
    let a = campaigns::list(&tx, &CampaignFilter::default(), &page)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&a), expected_a);

    let tx = TenantTx::begin(&one, &ctx_b).await.unwrap();
    let b = campaigns::list(&tx, &CampaignFilter::default(), &page)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&b), expected_b);

    let txn = one.raw().begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL ROLE app_sme")
        .await
        .unwrap();
    assert_eq!(
        scalar(&txn, "SELECT count(*) FROM public.campaigns").await,
        0
    );
    txn.commit().await.unwrap();

    let tx = TenantTx::begin(&one, &ctx_a).await.unwrap();
    assert!(tx.execute_unprepared("SELECT 1/0").await.is_err());
    tx.rollback().await.unwrap();

    let tx = TenantTx::begin(&one, &ctx_a).await.unwrap();
    let a_again = campaigns::list(&tx, &CampaignFilter::default(), &page)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&a_again), expected_a);

    let tx = TenantTx::begin(&one, &ctx_b).await.unwrap();
    let b_again = campaigns::list(&tx, &CampaignFilter::default(), &page)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&b_again), expected_b);
}

#[tokio::test]
async fn an_account_manager_context_sees_only_assigned_clients_rows() {
    let (_t, db, _su, w) = setup().await;
    let ctx = resolve_for(&db, w.account_manager, Some(w.agency1.id), "am")
        .await
        .unwrap();
    assert_eq!(ctx.clients(), &ClientScope::Only(vec![w.nike]));
    let tx = TenantTx::begin(&db, &ctx).await.unwrap();
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let visible = clients::list(&tx, &page).await.unwrap();
    assert_eq!(
        visible.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![w.nike]
    );
    assert!(clients::by_id(&tx, w.adidas).await.unwrap().is_none());
    let camps = campaigns::list(&tx, &CampaignFilter::default(), &page)
        .await
        .unwrap();
    assert!(!camps.items.is_empty());
    assert!(camps.items.iter().all(|c| c.client_id == Some(w.nike)));
    for table in [
        "tenant_b.outputs",
        "tenant_b.entity_data",
        "tenant_b.campaigns",
    ] {
        let foreign = scalar(
            &tx,
            &format!(
                "SELECT count(*) FROM {table} WHERE client_id <> '{}'",
                w.nike
            ),
        )
        .await;
        assert_eq!(foreign, 0, "account manager sees other clients in {table}");
        assert!(scalar(&tx, &format!("SELECT count(*) FROM {table}")).await > 0);
    }
    tx.commit().await.unwrap();

    // The policy, not only the repository: a raw query with the same
    // context cannot see adidas either.
    let txn = begin_as(
        &db,
        "app_agency",
        Some(w.agency1.id),
        &[w.nike.as_uuid()],
        false,
    )
    .await;
    let adidas_rows = scalar(
        &txn,
        &format!(
            "SELECT count(*) FROM tenant_b.campaigns WHERE client_id = '{}'",
            w.adidas
        ),
    )
    .await;
    assert_eq!(adidas_rows, 0);
    txn.rollback().await.unwrap();
}

async fn expect_violation(su: &DatabaseConnection, sql: &str, what: &str) {
    let err = su.execute_unprepared(sql).await.unwrap_err().to_string();
    assert!(err.contains(what), "expected {what}, got {err}");
}

#[tokio::test]
async fn even_a_superuser_cannot_put_one_tenant_types_row_into_the_others_tables() {
    let (_t, _db, su, w) = setup().await;
    // The superuser bypasses RLS entirely: only the constraints stand.
    expect_violation(
        &su,
        &format!(
            "INSERT INTO public.campaigns (org_id, id, org_type, name) VALUES ('{}', gen_random_uuid(), 'AGENCY', 'x')",
            w.agency1.id
        ),
        "check constraint",
    )
    .await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO public.campaigns (org_id, id, name) VALUES ('{}', gen_random_uuid(), 'x')",
            w.agency1.id
        ),
        "foreign key",
    )
    .await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES ('{}', gen_random_uuid(), 'x', 'x')",
            w.sme1.id
        ),
        "foreign key",
    )
    .await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO tenant_b.workspace_entities (org_id, id, org_type, name, slug) VALUES ('{}', gen_random_uuid(), 'SME', 'x', 'x')",
            w.sme1.id
        ),
        "check constraint",
    )
    .await;
}

#[tokio::test]
async fn rows_cannot_point_at_another_orgs_client_or_another_clients_campaign() {
    let (_t, _db, su, w) = setup().await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name) VALUES ('{}', gen_random_uuid(), '{}', 'x')",
            w.agency1.id, w.puma
        ),
        "foreign key",
    )
    .await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent) VALUES ('{}', gen_random_uuid(), '{}', '{}', 'BUSINESS_STRATEGY')",
            w.agency1.id, w.nike, w.adidas_campaigns[0]
        ),
        "foreign key",
    )
    .await;
    expect_violation(
        &su,
        &format!(
            "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent) VALUES ('{}', gen_random_uuid(), '{}', 'BUSINESS_STRATEGY')",
            w.sme1.id, w.sme2.campaigns[0]
        ),
        "foreign key",
    )
    .await;
}

#[tokio::test]
async fn a_connection_left_inside_a_writing_transaction_never_commits_it_with_the_next_request() {
    let (test_db, _db, su, w) = setup().await;
    let one = test_db.pool(1).await;
    let ctx_b = resolve_for(&one, w.sme2.owner, Some(w.sme2.id), "b")
        .await
        .unwrap();
    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    // An earlier user of the only connection opened a transaction behind the
    // pool's back, wrote, and left without ending it.
    one.raw()
        .execute_unprepared(&format!(
            "BEGIN; INSERT INTO public.campaigns (org_id, id, name) VALUES ('{}', gen_random_uuid(), 'left behind')",
            w.sme1.id
        ))
        .await
        .unwrap();
    // The next request's transaction refuses to start on it...
    assert!(TenantTx::begin(&one, &ctx_b).await.is_err());
    // ...the leftover write is gone, not committed by anyone...
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM public.campaigns WHERE name = 'left behind'"
        )
        .await,
        0
    );
    // ...and the connection serves the request after it normally.
    let tx = TenantTx::begin(&one, &ctx_b).await.unwrap();
    assert!(
        scalar(&tx, "SELECT count(*) FROM public.campaigns").await > 0,
        "sme2 sees its campaigns"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn reads_run_in_one_read_only_snapshot_and_writes_in_read_committed() {
    let (test_db, _db, su, w) = setup().await;
    let one = test_db.pool(1).await;
    let ctx = resolve_for(&one, w.sme1.owner, Some(w.sme1.id), "r")
        .await
        .unwrap();

    let read = TenantTx::begin_read_only(&one, &ctx).await.unwrap();
    assert_eq!(
        strata_tests::text(&read, "SHOW transaction_isolation")
            .await
            .as_deref(),
        Some("repeatable read")
    );
    assert_eq!(
        strata_tests::text(&read, "SHOW transaction_read_only")
            .await
            .as_deref(),
        Some("on")
    );
    let before = scalar(&read, "SELECT count(*) FROM public.campaigns").await;
    // A campaign committed meanwhile by someone else is not in this
    // request's snapshot: a page and its totals agree.
    su.execute_unprepared(&format!(
        "INSERT INTO public.campaigns (org_id, id, name) VALUES ('{}', gen_random_uuid(), 'meanwhile')",
        w.sme1.id
    ))
    .await
    .unwrap();
    assert_eq!(
        scalar(&read, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    let write = read
        .execute_unprepared("UPDATE public.campaigns SET name = 'x'")
        .await;
    assert!(write.is_err(), "a read-only transaction refuses writes");
    // Ending it sends nothing of its own; the only connection is clean for
    // the next request, which sees the new campaign.
    read.commit().await.unwrap();

    let tx = TenantTx::begin(&one, &ctx).await.unwrap();
    assert_eq!(
        strata_tests::text(&tx, "SHOW transaction_isolation")
            .await
            .as_deref(),
        Some("read committed")
    );
    assert_eq!(
        scalar(&tx, "SELECT count(*) FROM public.campaigns").await,
        before + 1
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_request_dropped_while_its_transaction_begins_leaves_no_transaction_behind() {
    let (test_db, _db, _su, w) = setup().await;
    let one = test_db.pool(1).await;
    let ctx = resolve_for(&one, w.sme1.owner, Some(w.sme1.id), "c")
        .await
        .unwrap();
    let login = strata_tests::text(one.raw(), "SELECT current_user::text").await;
    // Drop a beginning transaction once its first message is on its way
    // (a client that went away, a deadline): the only connection must come
    // back outside any transaction and as the login role, or not at all.
    let mut cancelled = 0;
    for step in 1..=8 {
        // Poll `step` times, letting the I/O progress in between, then drop
        // it if it has not finished: across the steps, one of the drops
        // falls after the message went out and before its answer was read.
        let mut begin = Box::pin(TenantTx::begin(&one, &ctx));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut done = None;
        for _ in 0..step {
            if let std::task::Poll::Ready(tx) = begin.as_mut().poll(&mut cx) {
                done = Some(tx);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        match done {
            Some(tx) => tx.unwrap().commit().await.unwrap(),
            None => {
                drop(begin);
                cancelled += 1;
            }
        }
        let user = strata_tests::text(one.raw(), "SELECT current_user::text").await;
        assert_eq!(user, login, "step {step}: the runtime role leaked");
        // A transaction-local setting that outlives its statement means the
        // connection is still inside a transaction block.
        strata_tests::text(one.raw(), "SELECT set_config('strata.probe', 'x', true)").await;
        let probe =
            strata_tests::text(one.raw(), "SELECT current_setting('strata.probe', true)").await;
        assert_ne!(
            probe.as_deref(),
            Some("x"),
            "step {step}: still inside a transaction"
        );
    }
    assert!(cancelled > 0, "no begin was cancelled");
}

/// The SQLSTATE of a statement that failed in the database.
fn sqlstate(err: &sea_orm::DbErr) -> Option<String> {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

/// Runs `sql` alone in a request transaction of `ctx` and commits it: the
/// rows it changed, or the SQLSTATE it failed with.
async fn attempt(db: &Db, ctx: &strata_domain::TenantContext, sql: &str) -> Result<u64, String> {
    let tx = TenantTx::begin(db, ctx).await.unwrap();
    match tx.execute_unprepared(sql).await {
        Ok(done) => {
            tx.commit().await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => {
            tx.rollback().await.unwrap();
            Err(sqlstate(&e).unwrap_or_else(|| e.to_string()))
        }
    }
}

#[tokio::test]
async fn only_an_administering_context_changes_members_clients_settings_and_keys() {
    let (_t, db, su, w) = setup().await;
    let org = w.agency1.id;
    // An ADMIN of AGENCY-1 (added by its owner) and a newcomer to add.
    let mut users = Vec::new();
    for _ in 0..2 {
        let id = strata_domain::UserId::generate();
        let tx = strata_persistence::AuthTx::for_user(&db, id, "t")
            .await
            .unwrap();
        strata_persistence::auth::provision_user(&tx, id, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        users.push(id);
    }
    let (admin, newcomer) = (users[0], users[1]);
    let owner = resolve_for(&db, w.agency1.owner, Some(org), "t")
        .await
        .unwrap();
    let tx = TenantTx::begin(&db, &owner).await.unwrap();
    strata_persistence::repo::members::add(&tx, admin, strata_domain::Role::Admin, &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let statements = [
        format!(
            "INSERT INTO public.memberships (org_id, user_id, org_type, role) \
             VALUES ('{org}', '{newcomer}', 'AGENCY', 'VIEWER')"
        ),
        format!(
            "UPDATE tenant_b.workspace_entities SET name = 'renamed' WHERE id = '{}'",
            w.nike
        ),
        format!(
            "UPDATE public.organizations SET settings = '{{\"branding\": {{\"color\": \"red\"}}}}' \
             WHERE id = '{org}'"
        ),
        format!(
            "INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id) \
             VALUES ('{org}', '{}', '{}')",
            w.adidas, w.account_manager
        ),
        format!("UPDATE public.api_keys SET name = 'renamed' WHERE org_id = '{org}'"),
    ];
    // What those statements would change, read by the superuser.
    let state = || async {
        let mut s = Vec::new();
        for sql in [
            format!("SELECT count(*) FROM public.memberships WHERE user_id = '{newcomer}'"),
            format!(
                "SELECT count(*) FROM tenant_b.workspace_entities WHERE name = 'renamed' AND org_id = '{org}'"
            ),
            format!(
                "SELECT count(*) FROM public.organizations WHERE settings ? 'branding' AND id = '{org}'"
            ),
            format!(
                "SELECT count(*) FROM tenant_b.client_assignments WHERE org_id = '{org}' AND user_id = '{}'",
                w.account_manager
            ),
            format!(
                "SELECT count(*) FROM public.api_keys WHERE name = 'renamed' AND org_id = '{org}'"
            ),
        ] {
            s.push(scalar(&su, &sql).await);
        }
        s
    };
    let before = state().await;
    assert_eq!(before, vec![0, 0, 0, 1, 0]);
    assert!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM public.api_keys WHERE org_id = '{org}'")
        )
        .await
            > 0
    );

    // A strategist may write content, and the database lets them...
    let strategist = resolve_for(&db, w.strategist, Some(org), "t")
        .await
        .unwrap();
    assert!(strategist.can_write() && !strategist.can_administer());
    let content =
        format!("UPDATE tenant_b.campaigns SET objective = 'changed' WHERE org_id = '{org}'");
    assert!(attempt(&db, &strategist, &content).await.unwrap() > 0);
    // ...but not administer: each write fails with insufficient_privilege
    // (a new row violates a policy), and a delete finds nothing to delete.
    for sql in &statements {
        assert_eq!(
            attempt(&db, &strategist, sql).await,
            Err("42501".to_owned()),
            "strategist: {sql}"
        );
    }
    let delete = format!(
        "DELETE FROM tenant_b.client_assignments WHERE org_id = '{org}' AND user_id = '{}'",
        w.account_manager
    );
    assert_eq!(attempt(&db, &strategist, &delete).await, Ok(0));
    assert_eq!(
        state().await,
        before,
        "a strategist changed administered rows"
    );

    // An admin may do all of it.
    let admin = resolve_for(&db, admin, Some(org), "t").await.unwrap();
    assert!(admin.can_administer());
    for sql in &statements {
        assert!(attempt(&db, &admin, sql).await.unwrap() > 0, "admin: {sql}");
    }
    assert_eq!(state().await[..3], [1, 1, 1]);
    assert_eq!(state().await[3], 2);
    assert!(state().await[4] > 0);
    assert_eq!(attempt(&db, &admin, &delete).await, Ok(2));
}
