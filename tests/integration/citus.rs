//! The schema on Citus (a coordinator and two workers started by the
//! harness): what the migrations distribute, that every shard keeps its
//! row-level security, that `strata audit` finds the distributed schema
//! sound, that migrations go down and up again, and that a request of one
//! tenant is a router query. The isolation suites themselves run again on
//! Citus under `STRATA_TEST_CITUS=1` (`.ci/run` does).

use sea_orm::{ConnectionTrait, DatabaseConnection};
use strata_persistence::{Migrator, MigratorTrait};
use strata_tests::tier::{Part, available};
use strata_tests::{Backend, TestDb, scalar, texts};

/// Tables of both schemas that hold a tenant's rows (have `org_id`).
async fn tenant_tables(su: &DatabaseConnection) -> Vec<String> {
    texts(
        su,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
         ORDER BY 1",
    )
    .await
}

/// A distributed database as the migrations leave it.
async fn distributed() -> TestDb {
    TestDb::migrated_on(Backend::Citus).await
}

#[tokio::test]
async fn tenant_tables_are_distributed_by_org_id_and_colocated_lookups_are_reference_tables() {
    if !available(Part::Citus, "citus") {
        return;
    }
    let db = distributed().await;
    let su = db.superuser().await;
    let reference = [
        "public.api_keys",
        "public.invitations",
        "public.memberships",
        "public.organizations",
        "public.users",
    ];
    let tables = tenant_tables(&su).await;
    assert!(tables.len() >= 13, "tenant tables: {tables:?}");
    let mut colocations = std::collections::BTreeSet::new();
    for table in &tables {
        let kind = strata_tests::text(
            &su,
            &format!(
                "SELECT partmethod::text || ':' || coalesce(column_to_column_name(logicalrelid, partkey), '') \
                 || ':' || colocationid FROM pg_dist_partition WHERE logicalrelid = '{table}'::regclass"
            ),
        )
        .await
        .unwrap_or_else(|| panic!("{table} is not known to Citus"));
        if reference.contains(&table.as_str()) {
            assert!(
                kind.starts_with("n:"),
                "{table} should be a reference table: {kind}"
            );
        } else {
            let mut parts = kind.split(':');
            assert_eq!(parts.next(), Some("h"), "{table}: {kind}");
            assert_eq!(parts.next(), Some("org_id"), "{table}: {kind}");
            colocations.insert(parts.next().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        colocations.len(),
        1,
        "one co-location group: {colocations:?}"
    );
    for table in ["public.organizations", "public.users"] {
        let kind = strata_tests::text(
            &su,
            &format!("SELECT partmethod::text FROM pg_dist_partition WHERE logicalrelid = '{table}'::regclass"),
        )
        .await;
        assert_eq!(kind.as_deref(), Some("n"), "{table}");
    }
    // Shards live on both workers.
    let nodes = scalar(
        &su,
        "SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement p
         JOIN pg_dist_shard s USING (shardid)
         WHERE s.logicalrelid = 'public.campaigns'::regclass",
    )
    .await;
    assert_eq!(nodes, 2, "campaigns' shards are on both workers");
}

#[tokio::test]
async fn every_shard_has_row_level_security_enabled_and_forced_and_no_lost_restrictive_policy() {
    if !available(Part::Citus, "citus") {
        return;
    }
    let db = distributed().await;
    let su = db.superuser().await;
    // One row per placement of every distributed or reference table of
    // ours: whether the shard has RLS enabled and forced.
    let placements = texts(
        &su,
        "SELECT p.result FROM pg_dist_partition d,
           LATERAL run_command_on_placements(d.logicalrelid,
             $$SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class WHERE oid = '%s'::regclass$$) p
         WHERE d.logicalrelid::text NOT LIKE 'pg_%'",
    )
    .await;
    assert!(placements.len() > 20, "placements: {}", placements.len());
    assert!(
        placements.iter().all(|r| r == "truetrue"),
        "a shard without forced RLS: {placements:?}"
    );
    // Citus recreates a restrictive policy on the shards as a permissive
    // one, which would widen it; the migrations fold them, so no node has
    // any restrictive policy left, and every shard has policies.
    let restrictive = texts(
        &su,
        "SELECT result FROM run_command_on_all_nodes(
           $$SELECT count(*) FROM pg_policy WHERE NOT polpermissive$$)",
    )
    .await;
    assert_eq!(
        restrictive,
        vec!["0", "0", "0"],
        "restrictive policies per node"
    );
    let unpoliced = texts(
        &su,
        "SELECT p.result FROM pg_dist_partition d,
           LATERAL run_command_on_placements(d.logicalrelid,
             $$SELECT count(*) FROM pg_policy WHERE polrelid = '%s'::regclass$$) p
         WHERE d.logicalrelid::text NOT LIKE 'pg_%'",
    )
    .await;
    assert!(
        !unpoliced.iter().any(|n| n == "0"),
        "a shard without policies: {unpoliced:?}"
    );
    // The runtime roles exist on every node and may log in there (queries
    // reach the workers as the role that runs them).
    let roles = texts(
        &su,
        "SELECT result FROM run_command_on_all_nodes(
           $$SELECT count(*) FROM pg_roles WHERE rolcanlogin AND rolname IN
             ('strata_owner', 'app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease')$$)",
    )
    .await;
    assert_eq!(roles, vec!["6", "6", "6"], "runtime roles per node");
}

#[tokio::test]
async fn strata_audit_finds_the_distributed_schema_sound() {
    if !available(Part::Citus, "citus") {
        return;
    }
    let db = distributed().await;
    let pool = db.pool(2).await;
    assert!(pool.is_citus());
    let report = strata_persistence::audit::run(&pool, true).await.unwrap();
    let findings: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{} {}: {}", f.id, f.object, f.message))
        .collect();
    assert!(findings.is_empty(), "audit on Citus: {findings:#?}");
    // The lint knows where it is.
    assert!(
        report.notes.iter().any(|n| n.contains("Citus")),
        "{:?}",
        report.notes
    );

    // What only the shards show is found: one shard's RLS turned off on a
    // worker behind the coordinator's back, and a restrictive policy.
    let su = db.superuser().await;
    let done = texts(
        &su,
        "SELECT success::text FROM run_command_on_placements('tenant_b.campaigns',
           $$ALTER TABLE %s NO FORCE ROW LEVEL SECURITY$$)",
    )
    .await;
    assert!(
        !done.is_empty() && done.iter().all(|d| d == "true"),
        "{done:?}"
    );
    let report = strata_persistence::audit::run(&pool, false).await.unwrap();
    let shard_findings: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.id == "citus.shard_rls")
        .map(|f| f.object.as_str())
        .collect();
    assert!(
        !shard_findings.is_empty()
            && shard_findings
                .iter()
                .all(|o| o.starts_with("tenant_b.campaigns")),
        "{:?}",
        report.findings
    );
    let done = texts(
        &su,
        "SELECT success::text FROM run_command_on_placements('public.organizations',
           $$CREATE POLICY tampered ON %s AS RESTRICTIVE USING (true)$$)",
    )
    .await;
    assert!(
        !done.is_empty() && done.iter().all(|d| d == "true"),
        "{done:?}"
    );
    let report = strata_persistence::audit::run(&pool, false).await.unwrap();
    assert!(
        report.has("citus.restrictive_policy"),
        "{:?}",
        report.findings
    );
}

#[tokio::test]
async fn migrations_go_down_and_up_again_on_citus() {
    if !available(Part::Citus, "citus") {
        return;
    }
    let db = TestDb::empty_on(Backend::Citus).await;
    let su = db.superuser().await;
    Migrator::up(&su, None).await.unwrap();
    let tables = tenant_tables(&su).await;
    let distributed =
        "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text NOT LIKE 'pg_%'";
    assert!(scalar(&su, distributed).await >= tables.len() as i64);
    Migrator::down(&su, None).await.unwrap();
    assert!(tenant_tables(&su).await.is_empty(), "down leaves no table");
    assert_eq!(scalar(&su, distributed).await, 0);
    // Nothing of ours is left on the workers either.
    let left = texts(
        &su,
        "SELECT result FROM run_command_on_workers(
           $$SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('tenant_b') OR c.relname LIKE 'campaigns%'$$)",
    )
    .await;
    assert_eq!(left, vec!["0", "0"], "shards left on the workers");
    Migrator::up(&su, None).await.unwrap();
    assert_eq!(tenant_tables(&su).await, tables);
    assert!(scalar(&su, distributed).await >= tables.len() as i64);
}

/// A single tenant's requests touch one shard: the main shapes, run as the
/// runtime role inside a request transaction with its context, plan as
/// router queries (one task) that find the tenant's rows.
#[tokio::test]
async fn one_tenants_requests_are_router_queries() {
    use strata_domain::{ClientId, OrgId, UserId};
    use strata_persistence::TenantTx;
    if !available(Part::Citus, "citus") {
        return;
    }
    let db = distributed().await;
    let su = db.superuser().await;
    let pool = db.pool(1).await;
    let sme = OrgId::generate();
    let agency = OrgId::generate();
    let client = ClientId::generate();
    let (owner, manager) = (UserId::generate(), UserId::generate());
    su.execute_unprepared(&format!(
        "INSERT INTO public.organizations (id, type, name, slug) VALUES
           ('{sme}', 'SME', 's', 'router-sme-{sme}'), ('{agency}', 'AGENCY', 'a', 'router-agency-{agency}');
         INSERT INTO public.users (id) VALUES ('{owner}'), ('{manager}');
         INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES
           ('{sme}', '{owner}', 'SME', 'OWNER'), ('{agency}', '{owner}', 'AGENCY', 'OWNER'),
           ('{agency}', '{manager}', 'AGENCY', 'ACCOUNT_MANAGER');
         INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES ('{agency}', '{client}', 'c', 'c');
         INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id) VALUES ('{agency}', '{client}', '{manager}');
         INSERT INTO public.campaigns (org_id, id, name) SELECT '{sme}', gen_random_uuid(), 'c' || g FROM generate_series(1, 5) g;
         INSERT INTO tenant_b.campaigns (org_id, id, client_id, name)
           SELECT '{agency}', gen_random_uuid(), '{client}', 'c' || g FROM generate_series(1, 5) g;"
    ))
    .await
    .unwrap();
    let cases = [
        (owner, sme, vec![
            "SELECT * FROM public.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".to_owned(),
            "SELECT count(*) FROM public.campaigns WHERE org_id = '{org}'".to_owned(),
        ]),
        (owner, agency, vec![
            "SELECT * FROM tenant_b.campaigns WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".to_owned(),
            "SELECT * FROM tenant_b.workspace_entities WHERE org_id = '{org}' ORDER BY created_at DESC, id DESC LIMIT 21".to_owned(),
        ]),
        (manager, agency, vec![
            format!("SELECT * FROM tenant_b.campaigns WHERE org_id = '{{org}}' AND client_id = ANY('{{{{{client}}}}}'::uuid[]) ORDER BY created_at DESC, id DESC LIMIT 21"),
            format!("SELECT c.*, w.name FROM tenant_b.campaigns c JOIN tenant_b.workspace_entities w ON w.org_id = c.org_id AND w.id = c.client_id WHERE c.org_id = '{{org}}' AND c.client_id = '{client}'"),
        ]),
    ];
    for (user, org, queries) in cases {
        let ctx = strata_persistence::context::resolve_for(&pool, user, Some(org), "plan")
            .await
            .unwrap();
        let tx = TenantTx::begin_read_only(&pool, &ctx).await.unwrap();
        for query in queries {
            let query = query.replace("{org}", &org.to_string());
            let found = scalar(&tx, &format!("SELECT count(*) FROM ({query}) q")).await;
            assert!(found > 0, "no rows for {query}");
            let plan = strata_tests::plan::explain(&tx, &query).await;
            let text = plan.to_string();
            assert!(
                text.contains("\"Task Count\":1"),
                "not a router query: {query}\n{plan:#}"
            );
            let nodes = strata_tests::plan::nodes(&plan);
            assert!(
                !nodes.iter().any(|n| n["Node Type"] == "Seq Scan"
                    && n["Relation Name"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("campaigns"))),
                "sequential scan of a shard in {query}:\n{plan:#}"
            );
        }
        tx.commit().await.unwrap();
    }
}

/// Rows of `org` in each placement of `table`, by node port (only
/// placements that hold some).
async fn rows_by_port(
    su: &DatabaseConnection,
    table: &str,
    org: strata_domain::OrgId,
) -> Vec<(i32, i64)> {
    let rows = su
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT nodeport, result::bigint AS n FROM run_command_on_placements('{table}',
                   $$SELECT count(*) FROM %s WHERE org_id = '{org}'$$)
                 WHERE result::bigint > 0 ORDER BY 1"
            ),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "nodeport").unwrap(),
                r.try_get("", "n").unwrap(),
            )
        })
        .collect()
}

/// `strata org place` moves one agency's rows of every table to the
/// worker it names, alone in its shard group, and the API answers as
/// before, for that agency and for the other tenants.
#[tokio::test]
async fn an_agency_placed_on_a_worker_has_its_rows_there_only_and_the_api_is_unchanged() {
    use strata_persistence::placement::{self, PlacementError};
    if !available(Part::Citus, "citus") {
        return;
    }
    let app = strata_tests::TestApp::builder()
        .backend(Backend::Citus)
        .spawn()
        .await;
    let (w, su) = strata_tests::world::World::on(&app).await;
    let agency = w.agency1.id;
    let query =
        "{ clients(first: 20) { nodes { id name campaigns(first: 20) { nodes { id name } } } } }";
    let owner = app.token(w.agency1.owner, Some(agency));
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    let before = strata_tests::ok(&app, &owner, query, serde_json::json!({})).await;
    let other_before = strata_tests::ok(&app, &other, query, serde_json::json!({})).await;

    let pool = app.test_db.pool(2).await;
    let was = placement::locate(&pool, agency).await.unwrap();
    // Whichever worker does not hold it now.
    let workers = texts(
        &su,
        "SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport",
    )
    .await;
    let target = workers.iter().find(|n| **n != was.node).unwrap().clone();
    let (host, port) = target.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let placed = placement::place(&pool, agency, host, port).await.unwrap();
    assert_eq!(placed.after.node, target);
    assert!(placed.after.isolated, "{placed:?}");

    // Every table's rows of the agency are on that worker, nowhere else;
    // the other agency's stay where they were.
    for table in [
        "tenant_b.workspace_entities",
        "tenant_b.campaigns",
        "tenant_b.client_assignments",
        "public.audit_log",
    ] {
        let found = rows_by_port(&su, table, agency).await;
        assert!(!found.is_empty(), "{table}: no rows of the agency");
        assert!(
            found.iter().all(|(p, _)| i32::from(port) == *p),
            "{table}: rows of the agency outside {target}: {found:?}"
        );
    }
    let after = strata_tests::ok(&app, &owner, query, serde_json::json!({})).await;
    assert_eq!(before, after, "the agency's answer changed");
    let other_after = strata_tests::ok(&app, &other, query, serde_json::json!({})).await;
    assert_eq!(other_before, other_after, "another agency's answer changed");
    // The account manager still sees nike only, from the new node.
    let am = app.token(w.account_manager, Some(agency));
    let seen = strata_tests::ok(
        &app,
        &am,
        "{ clients(first: 20) { nodes { id } } }",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        seen["clients"]["nodes"].as_array().unwrap().len(),
        1,
        "{seen}"
    );
    assert_eq!(seen["clients"]["nodes"][0]["id"], w.nike.to_string());

    // Again: nothing to do. And what cannot be placed says why.
    let again = placement::place(&pool, agency, host, port).await.unwrap();
    assert_eq!(again.before, again.after);
    assert!(matches!(
        placement::place(&pool, agency, "127.0.0.1", 1).await,
        Err(PlacementError::NoSuchNode(_))
    ));
    assert!(matches!(
        placement::place(&pool, strata_domain::OrgId::generate(), host, port).await,
        Err(PlacementError::NoSuchOrg(_))
    ));
}

/// `strata serve --demo` on Citus: the demo seeds through the coordinator
/// (twice: it resumes), and each demo user reads its own organization; an
/// agency's account manager sees only its assigned client, a viewer cannot
/// write, and nobody reads another organization.
#[tokio::test]
async fn the_demo_seeds_on_citus_and_each_demo_user_stays_in_its_tenant() {
    use strata_domain::Role;
    if !available(Part::Citus, "citus") {
        return;
    }
    let app = strata_tests::TestApp::builder()
        .backend(Backend::Citus)
        .spawn()
        .await;
    let users = strata_persistence::demo::seed(&app.db).await.unwrap();
    let again = strata_persistence::demo::seed(&app.db).await.unwrap();
    assert_eq!(users.len(), again.len());
    assert!(users.len() >= 4, "{users:?}");
    let orgs: std::collections::BTreeSet<_> = users.iter().map(|u| u.org_id).collect();
    assert!(orgs.len() >= 2, "two demo organizations at least");
    let read = "{ organization { id } campaigns(first: 50) { nodes { id } } }";
    for u in &users {
        let token = app.token(u.user_id, Some(u.org_id));
        let data = strata_tests::ok(&app, &token, read, serde_json::json!({})).await;
        assert_eq!(
            data["organization"]["id"],
            u.org_id.to_string(),
            "{}",
            u.label
        );
        for other in orgs.iter().filter(|o| **o != u.org_id) {
            let token = app.token(u.user_id, Some(*other));
            let (status, body) = app.graphql(Some(&token), read, serde_json::json!({})).await;
            assert!(
                status == 401 || body["data"]["organization"].is_null(),
                "{} reads {other}: {body}",
                u.label
            );
        }
        if u.role == Role::Viewer {
            let (_, body) = app
                .graphql(
                    Some(&app.token(u.user_id, Some(u.org_id))),
                    "mutation { createCampaign(input: {name: \"x\"}) { id } }",
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(strata_tests::error_code(&body), Some("FORBIDDEN"), "{body}");
        }
    }
    // The account manager's campaigns are a strict part of the owner's.
    let of = |role: Role| {
        users
            .iter()
            .find(|u| u.role == role && u.label.starts_with("agency"))
            .cloned()
    };
    if let (Some(owner), Some(manager)) = (of(Role::Owner), of(Role::AccountManager)) {
        let count = async |u: &strata_persistence::demo::DemoUser| {
            let token = app.token(u.user_id, Some(u.org_id));
            strata_tests::ok(
                &app,
                &token,
                "{ clients(first: 50) { nodes { id } } }",
                serde_json::json!({}),
            )
            .await["clients"]["nodes"]
                .as_array()
                .unwrap()
                .len()
        };
        let (all, assigned) = (count(&owner).await, count(&manager).await);
        assert!(
            assigned >= 1 && assigned < all,
            "owner {all}, account manager {assigned}"
        );
    }
}
