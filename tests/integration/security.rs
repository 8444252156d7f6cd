//! Findings of the security review, one test each: client addresses behind
//! a proxy, persisted queries that cannot fill the Redis holding the rate
//! limits, NUL bytes in free text, the answer-size cap.

use std::time::Duration;

use serde_json::{Value, json};
use strata_server::config::HttpConfig;
use strata_server::ratelimit::{Rate, RateLimitConfig};
use strata_tests::redis::RedisServer;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

async fn post(app: &TestApp, bearer: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(bearer)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const Q: &str = "{ organization { id } }";

fn failures_limited() -> RateLimitConfig {
    RateLimitConfig {
        auth_failures_per_ip: Rate::per(1, Duration::from_secs(30)),
        burst: 2,
        ..RateLimitConfig::off()
    }
}

#[tokio::test]
async fn behind_a_proxy_one_clients_failures_refuse_neither_valid_credentials_nor_other_clients() {
    // Without trusted proxies every client behind the ingress shares its
    // address: the failing one is blocked, yet valid credentials still pass.
    let app = TestApp::builder()
        .rate_limits(failures_limited())
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let good = app.token(w.sme1.owner, Some(w.sme1.id));
    let attacker = [("x-forwarded-for", "203.0.113.66")];
    let victim = [("x-forwarded-for", "198.51.100.7")];
    for i in 0..5 {
        post(
            &app,
            &format!("strata_bad{i}"),
            &attacker,
            json!({ "query": Q }),
        )
        .await;
    }
    let (s, body) = post(&app, "strata_bad9", &attacker, json!({ "query": Q })).await;
    assert_eq!(s, 429, "{body}");
    let (s, body) = post(&app, &good, &victim, json!({ "query": Q })).await;
    assert_eq!(
        s, 200,
        "a valid credential is never refused for its neighbours: {body}"
    );
    // The forwarded address is not believed from an untrusted peer: the
    // "other client" is the same address, and its failures are refused too.
    let (s, _) = post(&app, "strata_other", &victim, json!({ "query": Q })).await;
    assert_eq!(s, 429);

    // With the loopback proxy trusted, each client is its own address.
    let app = TestApp::builder()
        .rate_limits(failures_limited())
        .http(HttpConfig {
            trusted_proxies: strata_server::proxy::parse_trusted("127.0.0.0/8, ::1").unwrap(),
            ..HttpConfig::default()
        })
        .spawn()
        .await;
    for i in 0..5 {
        post(
            &app,
            &format!("strata_bad{i}"),
            &attacker,
            json!({ "query": Q }),
        )
        .await;
    }
    let (s, _) = post(&app, "strata_bad9", &attacker, json!({ "query": Q })).await;
    assert_eq!(s, 429);
    let (s, body) = post(&app, "strata_typo", &victim, json!({ "query": Q })).await;
    assert_eq!(s, 401, "another client's failure is its own: {body}");
    // A client cannot pose as another by writing the header itself: the
    // nearest address the trusted proxy appended decides.
    let (s, _) = post(
        &app,
        "strata_bad10",
        &[("x-forwarded-for", "198.51.100.7, 203.0.113.66")],
        json!({ "query": Q }),
    )
    .await;
    assert_eq!(s, 429);
}

#[tokio::test]
async fn a_flood_of_persisted_query_registrations_neither_fills_redis_nor_touches_the_rate_limits()
{
    if !strata_tests::tier::available(
        strata_tests::tier::Part::Redis,
        "a_flood_of_persisted_query_registrations_neither_fills_redis_nor_touches_the_rate_limits",
    ) {
        return;
    }
    let redis = RedisServer::start().await;
    let app = TestApp::builder()
        .redis_url(redis.url.clone())
        .rate_limits(RateLimitConfig {
            per_user: Rate::per(1000, Duration::from_secs(3600)),
            burst: 1,
            ..RateLimitConfig::off()
        })
        .http(HttpConfig {
            pq_registrations_per_principal: Rate::per(5, Duration::from_secs(3600)),
            pq_registrations_per_org: Rate::per(8, Duration::from_secs(3600)),
            ..HttpConfig::default()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let flooder = app.token(w.sme1.owner, Some(w.sme1.id));
    let register = |text: String| {
        let hash = strata_server::documents::sha256_hex(&text);
        json!({ "query": text, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
    };
    // Forty distinct documents of one operation, each made new by a
    // comment: every one runs, five are kept.
    for i in 0..40 {
        let (s, body) = post(&app, &flooder, &[], register(format!("{Q} # {i}"))).await;
        assert_eq!(s, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
    }
    // Padded documents run but are never kept.
    let padded = format!("{Q}\n#{}", "x".repeat(8 * 1024));
    let hash = strata_server::documents::sha256_hex(&padded);
    let (_, body) = post(&app, &flooder, &[], register(padded)).await;
    assert!(body["errors"].is_null(), "{body}");

    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg("strata:apq:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert!(!kept.iter().any(|k| k.ends_with(&hash)));
    let (_, body) = post(
        &app,
        &flooder,
        &[],
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
    )
    .await;
    assert!(
        body.to_string().contains("PersistedQueryNotFound"),
        "{body}"
    );

    // The organization's cap holds across its members: the next member
    // keeps three, not five.
    let member = app.token(w.sme1_admin, Some(w.sme1.id));
    for i in 0..10 {
        post(&app, &member, &[], register(format!("{Q} # member {i}"))).await;
    }
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg("strata:apq:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 8, "{kept:?}");

    // The request buckets counted requests, nothing else: 52 requests so
    // far of the flooder's and the member's; their buckets live apart from
    // the registrations'.
    let rl: Vec<String> = redis::cmd("KEYS")
        .arg("strata:{rl}:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(rl.len(), 2, "one bucket per user: {rl:?}");
    let (s, body) = post(&app, &flooder, &[], json!({ "query": Q })).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn nul_bytes_in_free_text_are_bad_user_input_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let before = strata_tests::scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation($o: String) { createCampaign(input: {name: \"nul\", objective: $o}) { id } }",
            json!({ "o": "before\u{0}after" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE, brandVoice: {channels: [\"a\u{0}b\"]}}) { id } }",
            json!({ "c": w.sme1.campaigns[0].to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        strata_tests::scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_refused_as_too_complex() {
    let app = TestApp::builder()
        .http(HttpConfig {
            max_response_bytes: 2048,
            ..HttpConfig::default()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.agency1.owner, Some(w.agency1.id));
    let (s, body) = app
        .graphql(Some(&token), "{ organization { id } }", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    let big = (0..40)
        .map(|i| format!("a{i}: campaigns(first: 50) {{ edges {{ node {{ id name }} }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (_, body) = app
        .graphql(Some(&token), &format!("{{ {big} }}"), json!({}))
        .await;
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    assert!(body["data"].is_null(), "{body}");
}

#[tokio::test]
async fn a_read_only_context_cannot_write_token_usage_at_the_sql_level() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value as SqlValue};
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    su.execute_unprepared(&format!(
        "INSERT INTO public.token_usage (org_id, month, tokens, runs) VALUES ('{}', date_trunc('month', now())::date, 500, 3)",
        w.sme1.id
    ))
    .await
    .unwrap();
    for (can_write, writes) in [(false, false), (true, true)] {
        let txn = app.db.raw().begin().await.unwrap();
        let values: Vec<SqlValue> = vec![
            "app_sme".into(),
            Some(w.sme1.id.as_uuid()).into(),
            Option::<uuid::Uuid>::None.into(),
            Vec::<uuid::Uuid>::new().into(),
            true.into(),
            can_write.into(),
            Option::<String>::None.into(),
            "test".into(),
            false.into(),
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
        let reset = txn
            .execute_unprepared("UPDATE public.token_usage SET tokens = 0")
            .await
            .map(|r| r.rows_affected());
        let insert = txn
            .execute_unprepared(&format!(
                "INSERT INTO public.token_usage (org_id, month) VALUES ('{}', '2020-01-01')",
                w.sme1.id
            ))
            .await;
        if writes {
            assert_eq!(reset.unwrap(), 1);
            assert!(insert.is_ok());
        } else {
            // A read-only context sees the row but changes nothing.
            assert_eq!(reset.unwrap_or(0), 0);
            assert!(insert.is_err());
        }
        txn.rollback().await.unwrap();
    }
    assert_eq!(
        strata_tests::scalar(&su, "SELECT sum(tokens)::bigint FROM public.token_usage").await,
        500
    );
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let first = w.agency1.owner;
    let first_token = app.token(first, Some(w.agency1.id));
    for round in 0..6 {
        // A second owner, added by the first.
        let second = strata_domain::UserId::generate();
        su.execute_unprepared(&format!(
            "INSERT INTO public.users (id) VALUES ('{second}')"
        ))
        .await
        .unwrap();
        let (_, body) = app
            .graphql(
                Some(&first_token),
                "mutation($u: ID!) { addMember(input: {userId: $u, role: OWNER}) { userId } }",
                json!({ "u": second.to_string() }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let second_token = app.token(second, Some(w.agency1.id));
        let remove = "mutation($u: ID!) { removeMember(userId: $u) }";
        let (a, b) = tokio::join!(
            app.graphql(
                Some(&first_token),
                remove,
                json!({ "u": second.to_string() })
            ),
            app.graphql(
                Some(&second_token),
                remove,
                json!({ "u": first.to_string() })
            ),
        );
        let succeeded = [&a.1, &b.1]
            .iter()
            .filter(|b| b["errors"].is_null())
            .count();
        assert_eq!(succeeded, 1, "round {round}: {a:?} {b:?}");
        let owners = strata_tests::scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.memberships WHERE org_id = '{}' AND role = 'OWNER'",
                w.agency1.id
            ),
        )
        .await;
        assert_eq!(owners, 1, "round {round}");
        if !b.1["errors"].is_null() {
            continue;
        }
        // The second owner won: it hands the organization back.
        let (_, body) = app
            .graphql(
                Some(&second_token),
                "mutation($u: ID!) { addMember(input: {userId: $u, role: OWNER}) { userId } }",
                json!({ "u": first.to_string() }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let (_, body) = app
            .graphql(
                Some(&first_token),
                remove,
                json!({ "u": second.to_string() }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::builder()
        .http(HttpConfig {
            header_read_timeout: Duration::from_millis(500),
            ..HttpConfig::default()
        })
        .spawn()
        .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The server closes the connection (with or without a 408) well before
    // this test would give up.
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // A complete request on a fresh connection is served.
    assert_eq!(app.get("/healthz").await, 200);
}
