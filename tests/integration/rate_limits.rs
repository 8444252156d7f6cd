//! Per-tenant rate limits: each bucket (API key, user, organization)
//! refuses with 429, `RATE_LIMITED` and `Retry-After`, spares everyone
//! else, and recovers; with Redis, two gateways share one bucket.
//!
//! Rates here are slow (one request per ten seconds or per hour), so no
//! token comes back between the requests of a test however slow the machine
//! is; a test that checks recovery waits for the Retry-After it was given.

use std::time::Duration;

use serde_json::{Value, json};
use strata_server::ratelimit::{Caller, Rate, RateLimitConfig, RateLimiter};
use strata_tests::redis::RedisServer;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

const Q: &str = "{ organization { id } }";

/// One request per ten seconds: slow enough that no token comes back
/// between a test's requests, quick enough to wait for.
const TEN_S: Rate = Rate::per(1, Duration::from_secs(10));
/// One request an hour: never refills during a test.
const HOURLY: Rate = Rate::per(1, Duration::from_secs(3600));
const OFF: Rate = Rate::OFF;

fn limits(per_key: Rate, per_user: Rate, per_org: Rate, burst: u32) -> RateLimitConfig {
    RateLimitConfig {
        per_key,
        per_user,
        per_org,
        burst,
        auth_failures_per_ip: OFF,
    }
}

async fn with_world(app: TestApp) -> (TestApp, World) {
    let (world, _su) = World::on(&app).await;
    (app, world)
}

/// Posts `Q` with this bearer credential: status, Retry-After, body.
async fn call(app: &TestApp, bearer: &str) -> (u16, Option<u64>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(bearer)
        .json(&json!({ "query": Q }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts a 429 with its code and a Retry-After of at most `max` seconds
/// (the period of one token); returns the Retry-After.
fn assert_limited((status, retry, body): &(u16, Option<u64>, Value), scope: &str, max: u64) -> u64 {
    assert_eq!(*status, 429, "{body}");
    assert_eq!(error_code(body), Some("RATE_LIMITED"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(scope), "{message}");
    let retry = retry.expect("a Retry-After header");
    assert!((1..=max).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry);
    retry
}

#[tokio::test]
async fn a_users_bucket_refuses_with_retry_after_spares_others_and_recovers() {
    // One request per ten seconds, two at once.
    let app = TestApp::builder()
        .rate_limits(limits(OFF, TEN_S, OFF, 2))
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let a = app.token(w.sme1.owner, Some(w.sme1.id));
    let b = app.token(w.sme2.owner, Some(w.sme2.id));
    assert_eq!(call(&app, &a).await.0, 200);
    assert_eq!(call(&app, &a).await.0, 200);
    let refused = call(&app, &a).await;
    let retry = assert_limited(&refused, "user", 10);
    // Someone else is not affected.
    let (s, _, body) = call(&app, &b).await;
    assert_eq!(s, 200, "{body}");
    // After the wait the caller gets through again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s, _, body) = call(&app, &a).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
}

#[tokio::test]
async fn an_api_keys_bucket_is_its_own_and_an_organizations_bucket_is_shared_by_its_members() {
    // Keys: one per ten seconds, two at once; users unlimited.
    let app = TestApp::builder()
        .rate_limits(limits(TEN_S, OFF, OFF, 2))
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (s, body) = app
        .graphql(
            Some(&owner),
            "mutation { createApiKey(input: {name: \"sync\"}) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let key = body["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call(&app, &key).await.0, 200);
    assert_eq!(call(&app, &key).await.0, 200);
    let retry = assert_limited(&call(&app, &key).await, "api key", 10);
    // The user who made the key has a bucket of their own.
    for _ in 0..4 {
        assert_eq!(call(&app, &owner).await.0, 200);
    }
    // The key recovers after the wait.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(call(&app, &key).await.0, 200);

    // Organizations: one per ten seconds, three at once, shared by every
    // member.
    let app = TestApp::builder()
        .rate_limits(limits(OFF, OFF, TEN_S, 3))
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let members = [w.agency1.owner, w.strategist, w.viewer];
    for user in members {
        let (s, _, body) = call(&app, &app.token(user, Some(w.agency1.id))).await;
        assert_eq!(s, 200, "{body}");
    }
    let account_manager = app.token(w.account_manager, Some(w.agency1.id));
    let retry = assert_limited(&call(&app, &account_manager).await, "organization", 10);
    // Another organization is untouched.
    let (s, _, _) = call(&app, &app.token(w.agency2.owner, Some(w.agency2.id))).await;
    assert_eq!(s, 200);
    // The organization recovers after the wait.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s, _, body) = call(&app, &account_manager).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn with_redis_two_gateways_share_one_bucket_and_persisted_queries() {
    if !strata_tests::tier::available(
        strata_tests::tier::Part::Redis,
        "with_redis_two_gateways_share_one_bucket_and_persisted_queries",
    ) {
        return;
    }
    let mut redis = RedisServer::start().await;
    let config = limits(OFF, HOURLY, OFF, 3);
    let a = TestApp::builder()
        .rate_limits(config.clone())
        .redis_url(redis.url.clone())
        .spawn()
        .await;
    let (a, w) = with_world(a).await;
    let b = TestApp::builder()
        .rate_limits(config)
        .redis_url(redis.url.clone())
        .spawn_beside(&a)
        .await;
    let t = a.token(w.sme1.owner, Some(w.sme1.id));
    // Three at once in all, whichever gateway is asked: in memory each
    // would allow three.
    assert_eq!(call(&a, &t).await.0, 200);
    assert_eq!(call(&b, &t).await.0, 200);
    assert_eq!(call(&a, &t).await.0, 200);
    assert_limited(&call(&b, &t).await, "user", 3600);
    assert_limited(&call(&a, &t).await, "user", 3600);
    // Another user is not affected, on either.
    let other = a.token(w.sme2.owner, Some(w.sme2.id));
    assert_eq!(call(&b, &other).await.0, 200);

    // A query persisted through one gateway runs by hash on the other.
    let other2 = a.token(w.agency2.owner, Some(w.agency2.id));
    let query = "query Mine { organization { id type } }";
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": strata_server::documents::sha256_hex(query) } });
    let post = |app: &TestApp, body: Value| {
        reqwest::Client::new()
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&other2)
            .json(&body)
            .send()
    };
    let r: Value = post(&a, json!({ "query": query, "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["organization"]["type"], "AGENCY", "{r}");
    let r: Value = post(&b, json!({ "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["data"]["organization"]["id"],
        w.agency2.id.to_string(),
        "{r}"
    );

    // If Redis goes away, requests are let through rather than failed.
    redis.stop();
    let fresh = a.token(w.agency1.owner, Some(w.agency1.id));
    let (s, _, body) = call(&a, &fresh).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(a.get("/readyz").await, 200);
}

#[tokio::test]
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while() {
    let app = TestApp::builder()
        .rate_limits(RateLimitConfig {
            auth_failures_per_ip: TEN_S,
            ..limits(OFF, OFF, OFF, 2)
        })
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let good = app.token(w.sme1.owner, Some(w.sme1.id));
    // Two failures are forgiven; the third blocks the address.
    for bad in [
        "strata_unknownkey1",
        "strata_unknownkey2",
        "strata_unknownkey3",
    ] {
        assert_eq!(call(&app, bad).await.0, 401);
    }
    // Now a failing credential from this address waits; a good one is
    // never refused for its neighbours' failures (behind a proxy, every
    // client shares one address).
    let refused = call(&app, "strata_unknownkey4").await;
    let retry = assert_limited(&refused, "client address", 10);
    let (s, _, body) = call(&app, &good).await;
    assert_eq!(s, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(call(&app, "strata_unknownkey5").await.0, 401);
}

/// The Redis script and the in-memory buckets (`governor`) are two
/// implementations of one algorithm: for the same sequence of charges they
/// must let the same requests through. Rates are hourly, so only the
/// sequence decides, never the clock.
#[tokio::test]
async fn the_redis_script_and_the_memory_buckets_decide_alike() {
    if !strata_tests::tier::available(
        strata_tests::tier::Part::Redis,
        "the_redis_script_and_the_memory_buckets_decide_alike",
    ) {
        return;
    }
    let redis = RedisServer::start().await;
    let conn =
        strata_server::ratelimit::connect_redis(&secrecy::SecretString::from(redis.url.clone()))
            .await
            .unwrap();
    // Key: 3 at once; user: 4; organization: 6.
    let config = limits(
        Rate::per(3, Duration::from_secs(3600)),
        Rate::per(4, Duration::from_secs(3600)),
        Rate::per(6, Duration::from_secs(3600)),
        1,
    );
    let shared = RateLimiter::new(config.clone(), Some(conn));
    let memory = RateLimiter::new(config, None);
    assert!(shared.shared() && !memory.shared());

    let id = uuid::Uuid::new_v4;
    let (key, u1, u2, u3, org_a, org_b) = (id(), id(), id(), id(), id(), id());
    let as_key = Caller {
        api_key: Some(key),
        user: None,
        org: Some(org_a),
        key_rate: None,
    };
    let user = |user, org| Caller {
        api_key: None,
        user: Some(user),
        org: Some(org),
        key_rate: None,
    };
    // (who, cost, whether it passes)
    let sequence = [
        (as_key, 1, true),
        (as_key, 2, true),
        // The key's bucket is empty.
        (as_key, 1, false),
        // More than any bucket of the key holds.
        (as_key, 4, false),
        (user(u1, org_a), 2, true),
        // The same user in another organization: one user bucket.
        (user(u1, org_b), 2, true),
        (user(u1, org_b), 1, false),
        // Organization A has one token left: a batch of two is refused...
        (user(u2, org_a), 2, false),
        // ...one request passes, and then A is empty for everyone.
        (user(u2, org_a), 1, true),
        (user(u2, org_a), 1, false),
        (as_key, 1, false),
        // More than a user's bucket holds, then exactly what it holds.
        (user(u3, org_b), 5, false),
        (user(u3, org_b), 4, true),
        // Organization B has had 2 + 4.
        (user(u3, org_b), 1, false),
    ];
    for (i, (caller, cost, passes)) in sequence.into_iter().enumerate() {
        let in_redis = shared.check(&caller, cost).await;
        let in_memory = memory.check(&caller, cost).await;
        assert_eq!(in_redis.is_ok(), passes, "step {i} in Redis: {in_redis:?}");
        assert_eq!(
            in_memory.is_ok(),
            passes,
            "step {i} in memory: {in_memory:?}"
        );
        if let (Err(r), Err(m)) = (in_redis, in_memory) {
            assert!(r.retry_after_secs() >= 1 && m.retry_after_secs() >= 1);
        }
    }
}

/// Requests refused before they run (unreadable, too large, the wrong
/// content type, too many operations, a mutation over GET) are charged to
/// their sender: a flood of junk empties its own bucket, not anyone else's.
#[tokio::test]
async fn refused_requests_are_charged_to_their_sender() {
    // Five requests an hour per user; organizations unlimited.
    let app = TestApp::builder()
        .rate_limits(limits(OFF, Rate::per(5, Duration::from_secs(3600)), OFF, 1))
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let junk_sender = app.token(w.sme1.owner, Some(w.sme1.id));
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", app.base);
    let post = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(&url)
            .bearer_auth(&junk_sender)
            .header("content-type", content_type)
            .body(body)
    };
    let junk = [
        (post("application/json", b"{\"query\": ".to_vec()), 400),
        (post("text/plain", b"{ organization { id } }".to_vec()), 415),
        (post("application/json", vec![b' '; 2 * 1024 * 1024]), 413),
        (
            post(
                "application/json",
                serde_json::to_vec(&vec![json!({ "query": Q }); 11]).unwrap(),
            ),
            400,
        ),
        (
            client
                .get(&url)
                .bearer_auth(&junk_sender)
                .query(&[("query", "mutation { revokeApiKey(id: \"x\") { id } }")]),
            405,
        ),
    ];
    for (request, status) in junk {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
    }
    // The sixth piece of junk, and then anything from this user, is 429.
    let resp = post("application/json", b"{nope".to_vec())
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let refused = (resp.status().as_u16(), retry, resp.json().await.unwrap());
    assert_limited(&refused, "user", 3600);
    assert_limited(&call(&app, &junk_sender).await, "user", 3600);
    // Another tenant's well-formed request is served.
    let (s, _, body) = call(&app, &other).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme2.id.to_string());
}

/// A request without any credential gets GraphQL over HTTP's status for a
/// bad body (never a 401 that hides it), a 401 for a good one, and its
/// refused bodies count against its address like failed logins.
#[tokio::test]
async fn anonymous_bad_bodies_get_their_status_and_count_against_the_address() {
    let app = TestApp::builder()
        .rate_limits(RateLimitConfig {
            auth_failures_per_ip: TEN_S,
            ..limits(OFF, OFF, OFF, 2)
        })
        .spawn()
        .await;
    let (app, w) = with_world(app).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", app.base);
    let plain = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{ me { role } }")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    let broken = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status().as_u16(), 400);
    let body: serde_json::Value = broken.json().await.unwrap();
    assert!(strata_tests::error_code(&body).is_some(), "{body}");
    // Two refusals are forgiven; the third blocks the address for
    // anything that fails again (a valid credential still passes).
    let good = client
        .post(&url)
        .json(&serde_json::json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 401);
    let anonymous = client
        .post(&url)
        .json(&serde_json::json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .unwrap();
    let retry = anonymous
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let status = anonymous.status().as_u16();
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_limited(&(status, retry, body), "client address", 10);
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let (s, _, body) = call(&app, &token).await;
    assert_eq!(s, 200, "{body}");
}
