//! The gateway behind PgBouncer in transaction pooling mode, as deployed:
//! many client connections take turns on two server connections, so each
//! transaction may run on a different server session than the one before.
//! Every request must still succeed and see only its own tenant's rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use strata_tests::pgbouncer::PgBouncer;
use strata_tests::world::{Principal, World};
use strata_tests::{TestApp, TestDb, scalar};

fn ids(conn: &Value) -> BTreeSet<String> {
    conn["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const READ: &str = "{ me { user { id } organization { id } } campaigns(first: 100) { totalCount edges { node { id name client { id } outputs(first: 10) { totalCount edges { node { id campaignId } } } } } } }";

/// Reads the principal's campaigns with nested fields and checks them.
async fn read(app: &TestApp, p: &Principal, expected: &BTreeSet<String>) {
    let token = app.token(p.user, Some(p.org));
    let (status, body) = app.graphql(Some(&token), READ, json!({})).await;
    assert_eq!(status, 200, "{}: {body}", p.name);
    assert!(body.get("errors").is_none(), "{}: {body}", p.name);
    let data = &body["data"];
    assert_eq!(
        data["me"]["user"]["id"],
        json!(p.user.to_string()),
        "{}",
        p.name
    );
    assert_eq!(
        data["me"]["organization"]["id"],
        json!(p.org.to_string()),
        "{}",
        p.name
    );
    assert_eq!(&ids(&data["campaigns"]), expected, "{}", p.name);
    assert_eq!(
        data["campaigns"]["totalCount"].as_u64(),
        Some(expected.len() as u64),
        "{}",
        p.name
    );
    for edge in data["campaigns"]["edges"].as_array().into_iter().flatten() {
        for out in edge["node"]["outputs"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(out["node"]["campaignId"], edge["node"]["id"], "{}", p.name);
        }
    }
}

#[tokio::test]
async fn requests_and_agent_runs_through_pgbouncer_in_transaction_mode_stay_in_their_tenant() {
    if !strata_tests::tier::available(
        strata_tests::tier::Part::PgBouncer,
        "requests_and_agent_runs_through_pgbouncer_in_transaction_mode_stay_in_their_tenant",
    ) {
        return;
    }
    let test_db = TestDb::migrated().await;
    let su = test_db.superuser().await;
    let world = {
        let direct = test_db.pool(4).await;
        let w = World::seed(&direct, &su).await;
        direct.close().await;
        w
    };
    // As in production: the gateway logs in as strata_gateway, through the
    // pooler, with more client connections (8) than server ones (2).
    let gateway = test_db.url_logging_in_as("strata_gateway").await;
    let bouncer = PgBouncer::start(&gateway, 2).await;
    let app = Arc::new(
        TestApp::builder()
            .transaction_pooling(true)
            .spawn_on(test_db, bouncer.url.clone())
            .await,
    );
    let principals = Arc::new(world.principals());
    let expected: Arc<Vec<BTreeSet<String>>> = Arc::new(
        principals
            .iter()
            .map(|p| p.campaigns.iter().map(ToString::to_string).collect())
            .collect(),
    );

    for round in 0..3 {
        // Concurrently: more requests at once than client connections.
        let mut tasks = Vec::new();
        for i in 0..60 {
            let (app, principals, expected) = (app.clone(), principals.clone(), expected.clone());
            tasks.push(tokio::spawn(async move {
                let k = i % principals.len();
                read(&app, &principals[k], &expected[k]).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }

        // Sequentially: a write and reads by every principal in turn, so
        // each client connection's statements meet other server sessions.
        let mut expected_now: Vec<BTreeSet<String>> = expected.to_vec();
        for (k, p) in principals.iter().enumerate() {
            // A viewer only reads; everyone else also writes.
            if p.user == world.viewer {
                continue;
            }
            let token = app.token(p.user, Some(p.org));
            let client = if p.org == world.agency1.id {
                Some(world.nike.to_string())
            } else if p.org == world.agency2.id {
                Some(world.puma.to_string())
            } else {
                None
            };
            let name = format!("round {round} by {}", p.name);
            let (status, body) = app
                .graphql(
                    Some(&token),
                    "mutation($n: String!, $c: ID) { createCampaign(input: {name: $n, clientId: $c}) { id name } }",
                    json!({ "n": name, "c": client }),
                )
                .await;
            assert_eq!(status, 200, "{}: {body}", p.name);
            assert!(body.get("errors").is_none(), "{}: {body}", p.name);
            assert_eq!(body["data"]["createCampaign"]["name"], json!(name));
            let id = body["data"]["createCampaign"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            // The row is in the caller's organization, in its own table.
            let table = if p.org == world.sme1.id || p.org == world.sme2.id {
                "public.campaigns"
            } else {
                "tenant_b.campaigns"
            };
            assert_eq!(
                scalar(
                    &su,
                    &format!(
                        "SELECT count(*) FROM {table} WHERE id = '{id}' AND org_id = '{}'",
                        p.org
                    ),
                )
                .await,
                1,
                "{}",
                p.name
            );
            // Everyone who sees the organization's campaigns (or, for the
            // account manager, nike's) now sees it as well.
            for (j, q) in principals.iter().enumerate() {
                if q.org == p.org {
                    expected_now[j].insert(id.clone());
                }
            }
            for (j, q) in principals.iter().enumerate() {
                read(&app, q, &expected_now[j]).await;
            }
            let (status, body) = app
                .graphql(
                    Some(&token),
                    "mutation($id: ID!) { deleteCampaign(id: $id) }",
                    json!({ "id": id }),
                )
                .await;
            assert_eq!(status, 200, "{}: {body}", p.name);
            assert!(body.get("errors").is_none(), "{}: {body}", p.name);
            for (j, q) in principals.iter().enumerate() {
                if q.org == p.org {
                    expected_now[j].remove(&id);
                }
            }
            read(&app, p, &expected_now[k]).await;
        }
    }
    agent_runs(&app, &world, &su).await;
    assert_eq!(
        app.get("/readyz").await,
        200,
        "the database answers through PgBouncer"
    );
    drop(bouncer);
}

/// Agent runs of three tenants at once, two each.
async fn agent_runs(app: &Arc<TestApp>, world: &World, su: &sea_orm::DatabaseConnection) {
    // Runs take run locks on a connection of their own and write their
    // results in transactions of their own, beside requests.
    let cases = [
        (
            world.sme1.owner,
            world.sme1.id,
            world.sme1.campaigns[0],
            "public.agent_outputs",
        ),
        (
            world.agency1.owner,
            world.agency1.id,
            world.nike_campaigns[0],
            "tenant_b.outputs",
        ),
        (
            world.agency2.owner,
            world.agency2.id,
            world.agency2.campaigns[0],
            "tenant_b.outputs",
        ),
    ];
    let mut tasks = Vec::new();
    for (i, (user, org, campaign, table)) in cases.into_iter().enumerate() {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.token(user, Some(org));
            let agent = ["BUSINESS_STRATEGY", "BRAND_VOICE", "PERSONA_BUILDER"][i];
            let mut ids = Vec::new();
            for _ in 0..2 {
                ids.push(crate::agents::run(&app, &token, &campaign.to_string(), agent).await);
            }
            let mut ended = Vec::new();
            for id in ids {
                let run = crate::agents::ended(&app, &token, &id).await;
                assert_eq!(run["status"], "SUCCEEDED", "{run}");
                ended.push((id, org, table));
            }
            ended
        }));
    }
    for t in tasks {
        for (id, org, table) in t.await.unwrap() {
            assert_eq!(
                scalar(
                    su,
                    &format!(
                        "SELECT count(*) FROM {table} WHERE id = '{id}' AND org_id = '{org}' AND status = 'SUCCEEDED'"
                    ),
                )
                .await,
                1
            );
        }
    }
}
