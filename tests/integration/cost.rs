//! Charging by cost: an operation is estimated, from the schema's
//! `@cost`/`@listSize` model, to read as many rows as its pages may hold;
//! the estimate is close to the rows a full page really returns, it is
//! charged to the caller's buckets, and a refusal says what the operation
//! cost and what remained.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use strata_server::ratelimit::{Rate, RateLimitConfig};
use strata_tests::TestApp;
use strata_tests::world::World;

/// Every node object in an answer (anything with an `id` inside a list).
fn nodes(v: &Value) -> u64 {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| u64::from(i.get("id").is_some()) + nodes(i))
            .sum(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if k == "node" {
                    u64::from(v.get("id").is_some()) + nodes(v)
                } else {
                    nodes(v)
                }
            })
            .sum(),
        _ => 0,
    }
}

fn estimate(query: &str, vars: &Value) -> u64 {
    let model = strata_graphql::cost::CostModel::from_sdl(&strata_graphql::sdl()).unwrap();
    let doc = async_graphql::parser::parse_query(query).unwrap();
    model.estimate(
        &doc,
        None,
        &async_graphql::Variables::from_json(vars.clone()),
    )
}

/// Gives SME-1 30 campaigns with 8 succeeded outputs each, so that pages
/// are full.
async fn full_pages(su: &sea_orm::DatabaseConnection, w: &World) {
    su.execute_unprepared(&format!(
        "INSERT INTO public.campaigns (org_id, id, name) \
         SELECT '{o}', gen_random_uuid(), 'bulk ' || g FROM generate_series(1, 30) g;
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, output, finished_at) \
         SELECT c.org_id, gen_random_uuid(), c.id, 'BRAND_VOICE', 'SUCCEEDED', '{{}}'::jsonb, now() \
         FROM public.campaigns c, generate_series(1, 8) g WHERE c.org_id = '{o}';",
        o = w.sme1.id
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn the_estimate_of_relay_connections_is_within_a_fifth_of_the_rows_read() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    full_pages(&su, &w).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    for (query, vars) in [
        (
            "query($n: Int) { campaigns(first: $n) { edges { node { id name } } totalCount } }",
            json!({ "n": 25 }),
        ),
        (
            "{ campaigns(first: 10) { edges { node { id outputs(first: 5) { edges { node { id } } } } } } }",
            json!({}),
        ),
        (
            "{ campaigns { edges { cursor node { id outputs(first: 3) { edges { node { id } } pageInfo { hasNextPage } } } } } }",
            json!({}),
        ),
    ] {
        let (_, body) = app.graphql(Some(&token), query, vars.clone()).await;
        assert!(body["errors"].is_null(), "{body}");
        let read = nodes(&body["data"]);
        let estimated = estimate(query, &vars);
        let off = (estimated as f64 - read as f64).abs() / read as f64;
        assert!(off <= 0.2, "{query}: estimated {estimated}, read {read}");
    }
}

#[tokio::test]
async fn an_expensive_query_spends_what_a_hundred_cheap_ones_do_and_a_refusal_says_what_it_cost() {
    let app = TestApp::builder()
        .rate_limits(RateLimitConfig {
            per_user: Rate::per(100, Duration::from_secs(3600)),
            burst: 1,
            ..RateLimitConfig::off()
        })
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    full_pages(&su, &w).await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let expensive = "{ campaigns(first: 10) { edges { node { id outputs(first: 5) { edges { node { id } } } } } } }";
    assert_eq!(estimate(expensive, &json!({})), 60);
    let (status, body) = app.graphql(Some(&owner), expensive, json!({})).await;
    assert_eq!(status, 200, "{body}");
    // 60 of the hour's 100 units are spent; the second costs 60 again and
    // finds 39 (one more unit went on its arrival).
    let (status, body) = app.graphql(Some(&owner), expensive, json!({})).await;
    assert_eq!(status, 429, "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "RATE_LIMITED", "{body}");
    assert_eq!(ext["cost"], 60, "{body}");
    assert_eq!(ext["remaining"], 39, "{body}");
    assert!(ext["retryAfter"].as_u64().is_some_and(|s| s > 0), "{body}");
    assert!(body["data"].is_null(), "{body}");
    // What remains still buys cheap queries, one unit each.
    let cheap = "{ organization { id } }";
    for i in 0..39 {
        let (status, body) = app.graphql(Some(&owner), cheap, json!({})).await;
        assert_eq!(status, 200, "cheap query {i}: {body}");
    }
    let (status, _) = app.graphql(Some(&owner), cheap, json!({})).await;
    assert_eq!(status, 429);
    // Another user of the organization has a bucket of its own.
    let admin = app.token(w.sme1_admin, Some(w.sme1.id));
    let (status, body) = app.graphql(Some(&admin), expensive, json!({})).await;
    assert_eq!(status, 200, "{body}");
    // More than a bucket ever holds is too complex, whenever it comes.
    let (_, body) = app
        .graphql(Some(&admin), "{ campaigns(first: 100) { edges { node { id outputs(first: 100) { edges { node { id } } } } } } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{body}"
    );
}
