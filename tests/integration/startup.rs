//! `serve --demo`'s data: every tenant and role once, however often it runs,
//! and a seeding cut short part-way is finished by the next one.

use serde_json::json;
use strata_domain::{OrgId, UserId};
use strata_tests::{TestApp, TestDb, scalar};

/// What the demo holds, counted in the database as the superuser.
async fn census(conn: &sea_orm::DatabaseConnection) -> [i64; 7] {
    let demo =
        "(SELECT id FROM public.organizations WHERE slug LIKE 'sme-%' OR slug LIKE 'agency-%')";
    [
        scalar(
            conn,
            "SELECT count(*) FROM public.organizations WHERE type = 'SME'",
        )
        .await,
        scalar(
            conn,
            "SELECT count(*) FROM public.organizations WHERE type = 'AGENCY'",
        )
        .await,
        scalar(
            conn,
            &format!("SELECT count(*) FROM public.memberships WHERE org_id IN {demo}"),
        )
        .await,
        scalar(conn, "SELECT count(*) FROM tenant_b.workspace_entities").await,
        scalar(conn, "SELECT count(*) FROM tenant_b.client_assignments").await,
        scalar(conn, "SELECT count(*) FROM public.campaigns").await,
        scalar(conn, "SELECT count(*) FROM tenant_b.campaigns").await,
    ]
}

#[tokio::test]
async fn demo_seeding_creates_every_tenant_and_role_once_and_resumes_a_cut_short_run() {
    let db = TestDb::migrated().await;
    let pool = db.pool(2).await;
    let su = db.superuser().await;

    let users = strata_persistence::demo::seed(&pool).await.unwrap();
    // Two SMEs with four roles each, two agencies with all five.
    assert_eq!(users.len(), 18);
    for role in strata_domain::Role::ALL {
        assert!(users.iter().any(|u| u.role == role), "a demo {role:?}");
    }
    // 2 SMEs, 2 agencies, 18 members, 2 clients per agency, one account
    // manager assigned per agency, 2 campaigns per SME and per client.
    let expected = [2, 2, 18, 4, 2, 4, 8];
    assert_eq!(census(&su).await, expected);

    // Again: nothing new, the same users.
    let again = strata_persistence::demo::seed(&pool).await.unwrap();
    assert_eq!(census(&su).await, expected);
    let ids = |u: &[strata_persistence::demo::DemoUser]| {
        u.iter()
            .map(|u| (u.user_id, u.org_id, u.role))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&users));

    // A run stopped after agency-one's organization and owner were made:
    // everything after that is missing.
    let agency = "(SELECT id FROM public.organizations WHERE slug = 'agency-one')";
    for sql in [
        format!("DELETE FROM tenant_b.campaigns WHERE org_id = {agency}"),
        format!("DELETE FROM tenant_b.client_assignments WHERE org_id = {agency}"),
        format!("DELETE FROM tenant_b.workspace_entities WHERE org_id = {agency}"),
        format!("DELETE FROM public.memberships WHERE org_id = {agency} AND role <> 'OWNER'"),
    ] {
        sea_orm::ConnectionTrait::execute_unprepared(&su, &sql)
            .await
            .unwrap();
    }
    assert_eq!(census(&su).await, [2, 2, 14, 2, 1, 4, 4]);
    strata_persistence::demo::seed(&pool).await.unwrap();
    assert_eq!(census(&su).await, expected);
}

/// In production `serve` logs in as `strata_gateway`, which owns nothing and
/// may only switch to the runtime roles: with an up-to-date schema it starts
/// (migrating by default means nothing to do) and serves both tenant types;
/// with a schema that is behind it stops with one line saying what to run.
#[tokio::test]
async fn serve_logging_in_as_the_production_gateway_role_starts_and_serves() {
    let db = TestDb::migrated().await;
    let url = db.url_logging_in_as("strata_gateway").await;
    let su = db.superuser().await;
    let name = db.name.clone();
    let app = TestApp::builder()
        .try_spawn_migrating(db, url.clone())
        .await
        .expect("an up-to-date schema lets the unprivileged login role start");
    let logged_in = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND usename = 'strata_gateway'"
    );
    assert!(
        scalar(&su, &logged_in).await > 0,
        "the pool logs in as strata_gateway"
    );

    let user = UserId::generate();
    let token = app.token(user, None);
    let (status, body) = app
        .graphql(
            Some(&token),
            "mutation { createOrganization(input: {name: \"Prod Agency\", slug: \"prod-agency\", type: AGENCY}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let org = body["data"]["createOrganization"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let token = app.token(user, Some(OrgId::from_uuid(org.parse().unwrap())));
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation { createClient(input: {name: \"Acme\", slug: \"acme\"}) { id } }",
            json!({}),
        )
        .await;
    let client = body["data"]["createClient"]["id"]
        .as_str()
        .expect("a client")
        .to_owned();
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID) { createCampaign(input: {name: \"Launch\", clientId: $c}) { id } }",
            json!({ "c": client }),
        )
        .await;
    assert!(body["data"]["createCampaign"]["id"].is_string(), "{body}");
    let (_, body) = app
        .graphql(Some(&token), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(body["data"]["campaigns"]["totalCount"], 1, "{body}");
    assert_eq!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM tenant_b.campaigns WHERE org_id = '{org}'")
        )
        .await,
        1
    );
    // ...and it still cannot change the schema or read past RLS itself.
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'strata_gateway' AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)"
        )
        .await,
        0
    );

    // A schema one migration behind: that role cannot bring it up to date.
    let behind = TestDb::migrated().await;
    let url = behind.url_logging_in_as("strata_gateway").await;
    let bsu = behind.superuser().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &bsu,
        "DELETE FROM seaql_migrations WHERE version = (SELECT max(version) FROM seaql_migrations)",
    )
    .await
    .unwrap();
    let err = TestApp::builder()
        .try_spawn_migrating(behind, url)
        .await
        .err()
        .expect("a schema behind cannot be migrated by the gateway role");
    let line = format!("{err:#}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("strata migrate up"), "{line}");
}

/// `/readyz` is 503 while the database refuses the gateway and 200 again
/// once it accepts it; `/healthz` stays 200 throughout.
#[tokio::test]
async fn readiness_follows_the_database_and_liveness_does_not() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/readyz").await, 200);
    let name = app.test_db.name.clone();
    // A database cannot refuse connections to itself: speak from another.
    let other = secrecy::ExposeSecret::expose_secret(&app.test_db.url)
        .replace(&format!("/{name}"), "/postgres");
    let su = sea_orm::Database::connect(other).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &su,
        &format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await
    .unwrap();
    // The pool notices on its next use of a connection.
    let mut ready = 200;
    for _ in 0..50 {
        ready = app.get("/readyz").await;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready, 503,
        "not ready while the database refuses connections"
    );
    assert_eq!(app.get("/healthz").await, 200);

    sea_orm::ConnectionTrait::execute_unprepared(
        &su,
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .await
    .unwrap();
    let mut ready = 503;
    for _ in 0..100 {
        ready = app.get("/readyz").await;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready, 200,
        "ready again once the database accepts connections"
    );
}
