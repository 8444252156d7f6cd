//! `/metrics` after known traffic: per operation and organization type,
//! the pool, agent runs and tokens, rate-limit refusals, auth failures,
//! WebSockets and subscriptions, and the per-tenant series with their
//! bounded cardinality. The recorder is shared by every gateway of the test
//! process, so shared series are compared before and after; the per-tenant
//! series belong to one gateway and are exact.

use std::time::Duration;

use futures_util::SinkExt as _;
use serde_json::json;
use strata_server::ratelimit::{Rate, RateLimitConfig};
use strata_tests::world::World;
use strata_tests::{TestApp, metric_value, ok};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

async fn scrape(app: &TestApp) -> String {
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    text
}

/// Polls `series` until it reaches `at_least` (10 s at most).
async fn wait_for(app: &TestApp, series: &str, at_least: f64) -> f64 {
    for _ in 0..100 {
        let v = app.metric(series).await;
        if v >= at_least {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.metric(series).await
}

#[tokio::test]
async fn metrics_after_known_traffic_have_their_names_labels_and_values() {
    let app = TestApp::builder()
        .rate_limits(RateLimitConfig {
            per_user: Rate::per(3, Duration::from_secs(3600)),
            burst: 1,
            ..RateLimitConfig::off()
        })
        .http(strata_server::config::HttpConfig {
            metrics_top_tenants: 1,
            ..Default::default()
        })
        .spawn()
        .await;
    let su = app.test_db.superuser().await;
    let w = World::seed(&app.db, &su).await;
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let agency = app.token(w.agency1.owner, Some(w.agency1.id));

    let me_ok = r#"strata_graphql_operations_total{operation="Me",org_type="SME",outcome="ok"}"#;
    let me_count =
        r#"strata_graphql_operation_duration_seconds_count{operation="Me",org_type="SME"}"#;
    let clients_ok =
        r#"strata_graphql_operations_total{operation="Clients",org_type="AGENCY",outcome="ok"}"#;
    let unauthenticated = r#"strata_graphql_operations_total{operation="none",org_type="none",outcome="unauthenticated"}"#;
    let missing = r#"strata_auth_failures_total{reason="missing",transport="http"}"#;
    let invalid = r#"strata_auth_failures_total{reason="invalid_token",transport="http"}"#;
    let limited = r#"strata_rate_limited_total{scope="user",transport="http"}"#;
    let runs = r#"strata_agent_runs_total{kind="BUSINESS_STRATEGY",status="SUCCEEDED"}"#;
    let tokens_in = r#"strata_agent_tokens_total{kind="BUSINESS_STRATEGY",direction="in"}"#;
    let tokens_out = r#"strata_agent_tokens_total{kind="BUSINESS_STRATEGY",direction="out"}"#;
    let before = scrape(&app).await;
    let was = |series: &str| metric_value(&before, series);

    // Known traffic: three named queries of an SME owner (the anonymous
    // form is named after its only operation), an agency's, two refused
    // credentials, an agent run, and a fourth request of the SME owner's,
    // over the user's rate.
    for query in [
        "query Me { me { role } }",
        "query Me { me { role } }",
        "query Other { me { role } } query Me { me { role } }",
    ] {
        let body = json!({ "query": query, "operationName": if query.contains("Other") { json!("Me") } else { json!(null) } });
        let (status, resp) = app.graphql_body(Some(&sme), &body).await;
        assert_eq!(status, 200, "{resp}");
    }
    ok(
        &app,
        &agency,
        "query Clients { clients { totalCount } }",
        json!({}),
    )
    .await;
    let (status, _) = app.graphql(None, "{ me { role } }", json!({})).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .graphql(Some("not-a-token"), "{ me { role } }", json!({}))
        .await;
    assert_eq!(status, 401);
    let data = ok(
        &app,
        &agency,
        "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BUSINESS_STRATEGY}) { id } }",
        json!({ "c": w.agency1.campaigns[0].to_string() }),
    )
    .await;
    assert!(data["runAgent"]["id"].is_string());
    let (status, _) = app
        .graphql(Some(&sme), "query Me { me { role } }", json!({}))
        .await;
    assert_eq!(
        status, 429,
        "the fourth request of the SME owner is over its rate"
    );

    // A WebSocket with one running subscription, of another user of the
    // agency (the owner's bucket is spent).
    let admin = app.token(w.admin, Some(w.agency1.id));
    let url = format!("{}/graphql/ws", app.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {admin}")}})
                .to_string(),
        ))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { status } }",
                "variables": { "id": data["runAgent"]["id"] },
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    let open = wait_for(&app, "strata_ws_connections", 1.0).await;
    assert!(open >= 1.0, "open sockets: {open}");

    let ran = wait_for(&app, runs, was(runs) + 1.0).await;
    assert!(ran >= was(runs) + 1.0, "agent runs: {ran}");
    let after = scrape(&app).await;
    let now = |series: &str| metric_value(&after, series);
    assert_eq!(now(me_ok) - was(me_ok), 3.0, "{after}");
    assert_eq!(now(me_count) - was(me_count), 3.0, "{after}");
    assert_eq!(now(clients_ok) - was(clients_ok), 1.0, "{after}");
    assert!(
        now(unauthenticated) - was(unauthenticated) >= 2.0,
        "{after}"
    );
    assert!(now(missing) - was(missing) >= 1.0, "{after}");
    assert!(now(invalid) - was(invalid) >= 1.0, "{after}");
    assert!(now(limited) - was(limited) >= 1.0, "{after}");
    assert!(now(tokens_in) > was(tokens_in), "{after}");
    assert!(now(tokens_out) > was(tokens_out), "{after}");
    for series in [
        r#"strata_graphql_requests_total{outcome="ok"}"#,
        r#"strata_graphql_operation_duration_seconds_bucket{operation="Me",org_type="SME",le="+Inf"}"#,
        r#"strata_db_pool_connections{state="in_use"}"#,
        r#"strata_db_pool_connections{state="idle"}"#,
        "strata_db_pool_max_connections",
        "strata_db_pool_waiting",
        "strata_agent_runs_in_flight",
        "strata_ws_subscriptions",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(&format!("{series} "))),
            "{series} in {after}"
        );
    }
    assert!(now("strata_db_pool_acquire_seconds_count") > 0.0, "{after}");

    // Per tenant: one organization of its own (--metrics-top-tenants 1),
    // the rest under "other"; the five requests that reached a tenant
    // (three SME, one agency query, one runAgent) are all there.
    let tenant_lines: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("strata_tenant_requests_total{"))
        .collect();
    assert_eq!(tenant_lines.len(), 2, "{tenant_lines:?}");
    assert!(tenant_lines.iter().any(|l| l.contains("org_id=\"other\"")));
    let total: f64 = tenant_lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 5.0, "{tenant_lines:?}");
    let db_seconds: f64 = after
        .lines()
        .filter(|l| l.starts_with("strata_tenant_db_seconds_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(db_seconds > 0.0, "{after}");
    drop(socket);
}
