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
    txn.execute_unprepared(strata_tests::CITUS_PROPAGATE)
        .await
        .unwrap();
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
    // What the world has no repository for yet: usage counters, and an
    // assignment in the second agency.
    su.execute_unprepared(&format!(
        "INSERT INTO public.token_usage (org_id, month, tokens, runs)
           SELECT id, date_trunc('month', now())::date, 10, 1 FROM public.organizations
           ON CONFLICT DO NOTHING;
         INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id)
           VALUES ('{}', '{}', '{}')",
        w.agency2.id, w.puma, w.agency2.owner
    ))
    .await
    .unwrap();
    for (role, org, org_b) in [
        ("app_sme", w.sme1.id, w.sme2.id),
        ("app_agency", w.agency1.id, w.agency2.id),
    ] {
        let tables = readable_tables(&su, role).await;
        assert!(tables.len() >= 6, "{role} reads {tables:?}");
        let txn = begin_as(&db, role, Some(org), &[], true).await;
        // An administering context: the audit log and the API keys show
        // their rows to no other.
        txn.execute_unprepared("SET LOCAL app.can_administer = 'true'")
            .await
            .unwrap();
        let mut own_rows = 0;
        for (table, has_org_id) in &tables {
            let key = if *has_org_id { "org_id" } else { "id" };
            if table == "users" {
                continue;
            }
            // Another organization of the same type really has rows here,
            // so no table passes for want of anything to hide.
            let org_b_rows = scalar(
                &su,
                &format!("SELECT count(*) FROM {table} WHERE {key} = '{org_b}'"),
            )
            .await;
            assert!(
                org_b_rows > 0,
                "{org_b} has no row in {table} to hide from {role}"
            );
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
        // Every other setting granting as much as it can, but no
        // organization: the organization policies alone must refuse.
        for role in ["app_sme", "app_agency"] {
            let txn = one.raw().begin().await.unwrap();
            // One statement each: Citus forwards a `SET LOCAL` as the text
            // of the message that held it.
            txn.execute_unprepared(strata_tests::CITUS_PROPAGATE)
                .await
                .unwrap();
            for set in [
                "SET LOCAL app.can_write = 'true'".to_owned(),
                "SET LOCAL app.all_clients = 'true'".to_owned(),
                "SET LOCAL app.can_administer = 'true'".to_owned(),
                format!("SET LOCAL ROLE {role}"),
            ] {
                txn.execute_unprepared(&set).await.unwrap();
            }
            for (table, _) in readable_tables(&su, role).await {
                let n = scalar(&txn, &format!("SELECT count(*) FROM {table}")).await;
                assert_eq!(
                    n, 0,
                    "{role} with write and all-clients settings but no organization ({round}) sees rows in {table}"
                );
            }
            let inserts = if role == "app_sme" {
                vec![("public.campaigns".to_owned(), sme_campaign_insert(&w))]
            } else {
                tenant_b_inserts(&su, &w).await
            };
            for (table, insert) in &inserts {
                txn.execute_unprepared("SAVEPOINT probe").await.unwrap();
                let err = txn.execute_unprepared(insert).await.unwrap_err();
                assert_eq!(
                    strata_tests::sqlstate(&err).0.as_deref(),
                    Some("42501"),
                    "{role} insert into {table} without an organization ({round}): {err}"
                );
                txn.execute_unprepared("ROLLBACK TO SAVEPOINT probe")
                    .await
                    .unwrap();
            }
            txn.rollback().await.unwrap();
        }
        let txn = begin_as(&one, "app_sme", Some(w.sme1.id), &[], true).await;
        assert!(scalar(&txn, "SELECT count(*) FROM public.campaigns").await > 0);
        txn.commit().await.unwrap();
    }
    // The same inserts succeed with the organization in the context: what
    // refused them above was its absence alone.
    let txn = begin_as(&one, "app_sme", Some(w.sme1.id), &[], true).await;
    txn.execute_unprepared(&sme_campaign_insert(&w))
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let txn = begin_as(&one, "app_agency", Some(w.agency1.id), &[], true).await;
    // Clients and their assignments are an administrator's to write.
    txn.execute_unprepared("SET LOCAL app.can_administer = 'true'")
        .await
        .unwrap();
    for (table, insert) in tenant_b_inserts(&su, &w).await {
        txn.execute_unprepared(&insert)
            .await
            .unwrap_or_else(|e| panic!("insert into {table} with context: {e}"));
    }
    txn.rollback().await.unwrap();
}

fn sme_campaign_insert(w: &World) -> String {
    format!(
        "INSERT INTO public.campaigns (org_id, id, name) VALUES ('{}', gen_random_uuid(), 'x')",
        w.sme1.id
    )
}

/// A valid insert of AGENCY-1's for every table of `tenant_b` (the catalog's
/// list must match, so a new table cannot be left out).
async fn tenant_b_inserts(su: &DatabaseConnection, w: &World) -> Vec<(String, String)> {
    let (org, nike) = (w.agency1.id, w.nike);
    let inserts = vec![
        (
            "tenant_b.workspace_entities",
            format!(
                "INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES ('{org}', gen_random_uuid(), 'x', 'probe-client')"
            ),
        ),
        (
            "tenant_b.client_assignments",
            format!(
                "INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id) VALUES ('{org}', '{nike}', '{}')",
                w.strategist
            ),
        ),
        (
            "tenant_b.entity_data",
            format!(
                "INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name) VALUES ('{org}', gen_random_uuid(), '{nike}', 'PERSONA', 'x')"
            ),
        ),
        (
            "tenant_b.campaigns",
            format!(
                "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name) VALUES ('{org}', gen_random_uuid(), '{nike}', 'x')"
            ),
        ),
        (
            "tenant_b.outputs",
            format!(
                "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent) VALUES ('{org}', gen_random_uuid(), '{nike}', '{}', 'BUSINESS_STRATEGY')",
                w.nike_campaigns[0]
            ),
        ),
    ];
    let mut tables: Vec<String> = su
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'tenant_b' AND c.relkind IN ('r', 'p') ORDER BY 1",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    tables.sort();
    let mut covered: Vec<String> = inserts.iter().map(|(t, _)| (*t).to_owned()).collect();
    covered.sort();
    assert_eq!(covered, tables, "every tenant_b table needs an insert here");
    inserts
        .into_iter()
        .map(|(t, sql)| (t.to_owned(), sql))
        .collect()
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
        limit: 100,
        ..Default::default()
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
        limit: 100,
        ..Default::default()
    };
    let visible = clients::list(
        &tx,
        &page,
        &clients::ClientFilter {
            include_archived: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
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

/// Every table with an `org_type` column, in both schemas, from the catalog,
/// with whether the column has a default (a table for one type only).
async fn typed_tables(su: &DatabaseConnection) -> Vec<(String, bool)> {
    su.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT c.oid::regclass::text, a.atthasdef
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_type' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
         ORDER BY 1",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.try_get_by_index(0).unwrap(),
            r.try_get_by_index(1).unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn no_typed_table_takes_a_row_of_the_other_organization_type_even_from_a_superuser() {
    let (_t, _db, su, w) = setup().await;
    let tables = typed_tables(&su).await;
    assert!(tables.len() >= 10, "typed tables: {tables:?}");
    for (table, single_type) in &tables {
        // A real row of the table, moved to an organization of the other
        // type: everything else about it is as valid as the original.
        let source_type = strata_tests::text(&su, &format!("SELECT org_type FROM {table} LIMIT 1"))
            .await
            .unwrap_or_else(|| panic!("{table} has no row to copy"));
        let (other_org, other_type) = if source_type == "SME" {
            (w.agency1.id, "AGENCY")
        } else {
            (w.sme1.id, "SME")
        };
        let columns: Vec<String> = su
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT quote_ident(attname) FROM pg_attribute
                 WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [table.as_str().into()],
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        let insert = |org_type: Option<&str>| {
            let cols: Vec<&str> = columns
                .iter()
                .map(String::as_str)
                .filter(|c| org_type.is_some() || *c != "org_type")
                .collect();
            let cols = cols.join(", ");
            let patch = match org_type {
                Some(t) => {
                    format!("jsonb_build_object('org_id', '{other_org}', 'org_type', '{t}')")
                }
                None => format!("jsonb_build_object('org_id', '{other_org}')"),
            };
            format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{table},
                   (SELECT to_jsonb(r) FROM {table} r WHERE r.org_type = '{source_type}' LIMIT 1) || {patch})"
            )
        };
        // The constraints that hold the type: its CHECKs and foreign keys
        // naming org_type. Another constraint failing first would prove
        // nothing about the type.
        let type_constraints: Vec<String> = su
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT k.conname::text FROM pg_constraint k
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                 WHERE k.conrelid = $1::regclass AND k.contype IN ('c', 'f') AND a.attname = 'org_type'",
                [table.as_str().into()],
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        let mut cases = vec![("the source's type, explicitly", insert(Some(&source_type)))];
        if *single_type {
            cases.push(("the other type, explicitly", insert(Some(other_type))));
            cases.push(("the column's default", insert(None)));
        }
        for (what, sql) in cases {
            let err = su.execute_unprepared(&sql).await.unwrap_err();
            let (code, constraint) = strata_tests::sqlstate(&err);
            assert!(
                matches!(code.as_deref(), Some("23514" | "23503"))
                    && constraint
                        .as_ref()
                        .is_some_and(|c| type_constraints.contains(c)),
                "{table}: a row of {other_org} ({other_type}) with {what}: expected a check or \
                 foreign key violation of one of {type_constraints:?}, got {code:?} on {constraint:?}: {err}"
            );
        }
    }
}

#[tokio::test]
async fn the_repositories_filter_by_client_scope_even_when_the_database_would_show_every_client() {
    use strata_persistence::repo::{outputs, personas};
    let (_t, db, su, w) = setup().await;
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status)
           VALUES ('{}', gen_random_uuid(), '{}', '{}', 'BUSINESS_STRATEGY', 'SUCCEEDED')",
        w.agency1.id, w.adidas, w.adidas_campaigns[1]
    ))
    .await
    .unwrap();
    let ctx = resolve_for(&db, w.account_manager, Some(w.agency1.id), "am")
        .await
        .unwrap();
    assert_eq!(ctx.clients(), &ClientScope::Only(vec![w.nike]));
    let tx = TenantTx::begin(&db, &ctx).await.unwrap();
    // The Rust context stays limited to nike; the database is told every
    // client is visible, so only the repositories' own filters stand.
    tx.execute_unprepared("SET LOCAL app.all_clients = 'true'")
        .await
        .unwrap();
    for table in [
        "tenant_b.workspace_entities",
        "tenant_b.campaigns",
        "tenant_b.outputs",
        "tenant_b.entity_data",
    ] {
        let key = if table.ends_with("workspace_entities") {
            "id"
        } else {
            "client_id"
        };
        assert!(
            scalar(
                &tx,
                &format!("SELECT count(*) FROM {table} WHERE {key} = '{}'", w.adidas)
            )
            .await
                > 0,
            "the database hides adidas in {table}: this test would prove nothing"
        );
    }
    let page = PageRequest {
        limit: 100,
        ..Default::default()
    };
    let all = CampaignFilter::default();

    let listed = clients::list(
        &tx,
        &page,
        &clients::ClientFilter {
            include_archived: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        listed.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![w.nike]
    );
    assert_eq!(
        clients::count(
            &tx,
            &clients::ClientFilter {
                include_archived: true,
                ..Default::default()
            }
        )
        .await
        .unwrap(),
        1
    );
    let by_ids = clients::by_ids(&tx, &[w.nike, w.adidas]).await.unwrap();
    assert_eq!(
        by_ids.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![w.nike]
    );

    let camps = campaigns::list(&tx, &all, &page).await.unwrap();
    let mut ids: Vec<_> = camps.items.iter().map(|c| c.id).collect();
    ids.sort();
    let mut nike_campaigns = w.nike_campaigns.clone();
    nike_campaigns.sort();
    assert_eq!(ids, nike_campaigns);
    assert_eq!(campaigns::count(&tx, &all).await.unwrap(), 2);
    assert!(
        campaigns::by_id(&tx, w.adidas_campaigns[0])
            .await
            .unwrap()
            .is_none()
    );
    let mut both = w.nike_campaigns.clone();
    both.extend(&w.adidas_campaigns);
    assert!(
        campaigns::by_ids(&tx, &both)
            .await
            .unwrap()
            .iter()
            .all(|c| c.client_id == Some(w.nike))
    );

    let people = personas::list(&tx, &Default::default(), &page)
        .await
        .unwrap();
    assert!(!people.items.is_empty());
    assert!(people.items.iter().all(|p| p.client_id == Some(w.nike)));
    assert_eq!(
        personas::count(&tx, &Default::default()).await.unwrap(),
        people.items.len() as u64
    );

    let runs = outputs::pages_for_campaigns(&tx, &both, outputs::RunFilter::All, &page)
        .await
        .unwrap();
    assert!(!runs.is_empty());
    assert!(
        runs.values()
            .flat_map(|p| &p.items)
            .all(|r| r.client_id == Some(w.nike))
    );
    let counts = outputs::counts_for_campaigns(&tx, &both, outputs::RunFilter::All)
        .await
        .unwrap();
    assert!(counts.keys().all(|c| w.nike_campaigns.contains(c)));
    tx.rollback().await.unwrap();
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
async fn attempt(
    db: &Db,
    ctx: &strata_persistence::context::VerifiedContext,
    sql: &str,
) -> Result<u64, String> {
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
        // No WHERE: a strategist cannot read API keys, so a filtered update
        // would find none (below); this one reads no column and reaches
        // the update's own check. The organization policy still limits it.
        "UPDATE public.api_keys SET name = 'renamed'".to_owned(),
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
    let filtered = format!("UPDATE public.api_keys SET name = 'renamed' WHERE org_id = '{org}'");
    assert_eq!(attempt(&db, &strategist, &filtered).await, Ok(0));
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

/// The organization's audit rows and API keys that `conn` sees.
async fn administered_rows(conn: &impl ConnectionTrait, org: OrgId) -> (i64, i64) {
    (
        scalar(
            conn,
            &format!("SELECT count(*) FROM public.audit_log WHERE org_id = '{org}'"),
        )
        .await,
        scalar(
            conn,
            &format!("SELECT count(*) FROM public.api_keys WHERE org_id = '{org}'"),
        )
        .await,
    )
}

#[tokio::test]
async fn only_an_administering_context_reads_the_audit_log_and_api_keys() {
    let (_t, db, su, w) = setup().await;
    for (role, org, strategist, viewer, admin) in [
        (
            "app_sme",
            w.sme1.id,
            w.sme1_strategist,
            w.sme1_viewer,
            w.sme1_admin,
        ),
        ("app_agency", w.agency1.id, w.strategist, w.viewer, w.admin),
    ] {
        // The organization really has rows in both tables.
        let stored = administered_rows(&su, org).await;
        assert!(stored.0 > 0 && stored.1 > 0, "{role}: {stored:?}");

        // The context as app.begin_request sets it: a writing or a reading
        // context that may not administer sees none of them.
        for (can_write, can_administer, expected) in [
            (true, false, (0, 0)),
            (false, false, (0, 0)),
            (true, true, stored),
        ] {
            let txn = db.raw().begin().await.unwrap();
            let values: Vec<Value> = vec![
                role.into(),
                Some(org.as_uuid()).into(),
                Option::<Uuid>::None.into(),
                Vec::<Uuid>::new().into(),
                true.into(),
                can_write.into(),
                Option::<String>::None.into(),
                "test".into(),
                can_administer.into(),
            ];
            txn.execute_unprepared(strata_tests::CITUS_PROPAGATE)
                .await
                .unwrap();
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.begin_request($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                values,
            ))
            .await
            .unwrap();
            assert_eq!(
                administered_rows(&txn, org).await,
                expected,
                "{role}, can_write {can_write}, can_administer {can_administer}"
            );
            txn.rollback().await.unwrap();
        }

        // Resolved contexts: a strategist and a viewer see none, an admin
        // all of them.
        for (user, what, expected) in [
            (strategist, "strategist", (0, 0)),
            (viewer, "viewer", (0, 0)),
            (admin, "admin", stored),
        ] {
            let ctx = resolve_for(&db, user, Some(org), "t").await.unwrap();
            assert_eq!(ctx.can_administer(), what == "admin");
            let tx = TenantTx::begin_read_only(&db, &ctx).await.unwrap();
            assert_eq!(administered_rows(&tx, org).await, expected, "{role} {what}");
            tx.rollback().await.unwrap();
        }

        // A strategist still writes the audit row of its mutations, which
        // does not read the row back; an insert that would is refused.
        let ctx = resolve_for(&db, strategist, Some(org), "t").await.unwrap();
        let tx = TenantTx::begin(&db, &ctx).await.unwrap();
        strata_persistence::repo::audit::record(
            &tx,
            strata_persistence::repo::audit::AuditEntry {
                // An operation the seeded strategist never performed.
                action: strata_domain::Action::CancelAgentRun,
                target_type: "Probe",
                target_id: None,
                client_id: None,
                details: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
        tx.savepoint().await.unwrap();
        let err = tx
            .execute_unprepared(&format!(
                "INSERT INTO public.audit_log (org_id, id, operation, target_type) \
                 VALUES ('{org}', gen_random_uuid(), 'probeReturning', 'Probe') RETURNING id"
            ))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{role}: {err}");
        tx.end_savepoint(false).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            scalar(
                &su,
                &format!(
                    "SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' \
                     AND operation = 'cancelAgentRun' AND actor_user_id = '{strategist}'"
                )
            )
            .await,
            1,
            "{role}: the strategist's audit row"
        );
        assert_eq!(administered_rows(&su, org).await, (stored.0 + 1, stored.1));
    }
}
