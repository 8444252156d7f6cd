//! The WebSocket endpoint over a real socket: the `graphql-transport-ws`
//! close codes, the initialisation deadline, the per-principal socket cap,
//! and a credential checked again at every subscription, so that a removed
//! member, a revoked key, an unassigned client or an expired token gets no
//! new data on a socket opened before.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use strata_tests::TestApp;
use strata_tests::world::World;
use tokio_tungstenite::tungstenite::Message;

use crate::agents::{ended, run, ws_connect, ws_signed_in};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the server closes; returns the close code and reason, and
/// every text message before it.
async fn until_closed(socket: &mut Socket) -> (Option<u16>, String, Vec<Value>) {
    let mut texts = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("the server answers in time");
        match msg {
            Some(Ok(Message::Close(frame))) => {
                return match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string(), texts),
                    None => (None, String::new(), texts),
                };
            }
            Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the socket failed instead of closing cleanly: {e}"),
            None => return (None, String::new(), texts),
        }
    }
}

async fn send(socket: &mut Socket, msg: Value) {
    socket.send(Message::text(msg.to_string())).await.unwrap();
}

fn subscribe(id: &str, run: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { agentRun(id: $id) { id status } }",
        "variables": { "id": run },
    }})
}

/// What a subscription answered until it completed or was refused: every
/// message for `id`, and the close frame if the socket closed.
async fn answers(socket: &mut Socket, id: &str) -> (Vec<Value>, Option<u16>) {
    let mut got = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("an answer in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] != id {
                    continue;
                }
                let last = matches!(v["type"].as_str(), Some("complete" | "error"));
                got.push(v);
                if last {
                    // A refusal may be followed by a close: give it a moment.
                    if let Ok(Some(Ok(Message::Close(Some(f))))) =
                        tokio::time::timeout(Duration::from_millis(500), socket.next()).await
                    {
                        return (got, Some(u16::from(f.code)));
                    }
                    return (got, None);
                }
            }
            Some(Ok(Message::Close(f))) => return (got, f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return (got, None),
        }
    }
}

/// Whether any answer carried the run's data.
fn streamed_data(answers: &[Value]) -> bool {
    answers
        .iter()
        .any(|m| m["type"] == "next" && m["payload"]["data"]["agentRun"].is_object())
}

#[tokio::test]
async fn the_protocol_is_enforced_with_its_own_close_codes() {
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            ws_init_timeout: Duration::from_millis(600),
            ..Default::default()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));

    // No connection_init: closed with 4408 once the deadline passes.
    let mut socket = ws_connect(&app).await;
    let (code, reason, _) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4408), "{reason}");

    // A subscribe before the connection is acknowledged: 4401.
    let mut socket = ws_connect(&app).await;
    send(
        &mut socket,
        subscribe("1", &uuid::Uuid::new_v4().to_string()),
    )
    .await;
    let (code, _, texts) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4401));
    assert!(texts.is_empty(), "{texts:?}");

    // Junk: 4400, with a reason a close frame can carry.
    let mut socket = ws_connect(&app).await;
    socket.send(Message::text("{not json")).await.unwrap();
    let (code, reason, _) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4400));
    assert!(reason.len() <= 123);

    // A refused credential: 4403, never an acknowledgement.
    let mut socket = ws_connect(&app).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}}),
    )
    .await;
    let (code, _, texts) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4403));
    assert!(
        texts.iter().all(|m| m["type"] != "connection_ack"),
        "{texts:?}"
    );

    // A second connection_init: 4429.
    let mut socket = ws_signed_in(&app, &token).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    let (code, _, _) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4429));

    // Ping is answered with pong.
    let mut socket = ws_signed_in(&app, &token).await;
    send(&mut socket, json!({"type": "ping"})).await;
    let pong = crate::agents::next_json(&mut socket).await.unwrap();
    assert_eq!(pong["type"], "pong");
    send(
        &mut socket,
        json!({"id": "same", "type": "subscribe", "payload": {"query": "subscription($id: ID!) { agentRun(id: $id) { id } }", "variables": {"id": uuid::Uuid::new_v4().to_string()}}}),
    )
    .await;
    // That one is refused as not found and completes; the id is free again.
    let (got, _) = answers(&mut socket, "same").await;
    assert!(
        got.iter().any(|m| m.to_string().contains("NOT_FOUND")),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_subscription_id_in_use_closes_the_socket_with_4409() {
    let (base, _provider) = crate::subscriptions::silent_provider().await;
    let app = TestApp::builder()
        .llm(crate::subscriptions::patient(base))
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let id = run(
        &app,
        &token,
        &w.nike_campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    let mut socket = ws_signed_in(&app, &token).await;
    send(&mut socket, subscribe("a", &id)).await;
    let first = crate::agents::next_json(&mut socket).await.unwrap();
    assert_eq!(first["type"], "next", "{first}");
    send(&mut socket, subscribe("a", &id)).await;
    let (code, reason, _) = until_closed(&mut socket).await;
    assert_eq!(code, Some(4409), "{reason}");
}

#[tokio::test]
async fn a_principal_holds_at_most_its_sockets_and_others_are_unaffected() {
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            max_sockets_per_principal: 2,
            ..Default::default()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let _a = ws_signed_in(&app, &token).await;
    let b = ws_signed_in(&app, &token).await;
    let mut third = ws_connect(&app).await;
    send(
        &mut third,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    let (code, _, texts) = until_closed(&mut third).await;
    assert_eq!(code, Some(4429));
    assert!(texts.iter().all(|m| m["type"] != "connection_ack"));
    // Another user of the same organization still gets in.
    let other = app.token(w.admin, Some(w.agency1.id));
    let _c = ws_signed_in(&app, &other).await;
    // A closed socket gives its slot back.
    drop(b);
    let mut again = None;
    for _ in 0..50 {
        let mut s = ws_connect(&app).await;
        send(
            &mut s,
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
        )
        .await;
        let msg = crate::agents::next_json(&mut s).await;
        if msg.is_some_and(|m| m["type"] == "connection_ack") {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the slot of a closed socket came back");
}

/// Opens a socket as `token`, then lets `revoke` happen, then subscribes to
/// the (ended) run `id` on that socket: no data may come.
async fn after_revocation_no_data(
    case: &str,
    app: &TestApp,
    token: &str,
    id: &str,
    revoke: impl AsyncFnOnce(),
) {
    let mut socket = ws_signed_in(app, token).await;
    // Before: the run streams.
    send(&mut socket, subscribe("before", id)).await;
    let (before, _) = answers(&mut socket, "before").await;
    assert!(streamed_data(&before), "{before:?}");
    revoke().await;
    send(&mut socket, subscribe("after", id)).await;
    let (after, close) = answers(&mut socket, "after").await;
    assert!(
        !streamed_data(&after),
        "{case}: data after revocation: {after:?}"
    );
    let text = format!("{after:?}");
    assert!(
        text.contains("UNAUTHENTICATED") || text.contains("NOT_FOUND") || close == Some(4403),
        "{case}: {after:?} {close:?}"
    );
}

#[tokio::test]
async fn revocation_reaches_a_socket_opened_before_it() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let nike_run = run(
        &app,
        &strategist,
        &w.nike_campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    ended(&app, &strategist, &nike_run).await;

    // A removed member.
    after_revocation_no_data("removed member", &app, &strategist, &nike_run, async || {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "mutation($u: ID!) { removeMember(userId: $u) }",
                json!({ "u": w.strategist.to_string() }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    })
    .await;

    // An account manager unassigned from the run's client.
    let manager = app.token(w.account_manager, Some(w.agency1.id));
    after_revocation_no_data("unassigned client", &app, &manager, &nike_run, async || {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "mutation($u: ID!, $c: [ID!]) { updateMember(input: {userId: $u, clientIds: $c}) { role } }",
                json!({ "u": w.account_manager.to_string(), "c": [w.adidas.to_string()] }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    })
    .await;

    // Revoked sessions: an admin signs the viewer out.
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    after_revocation_no_data("revoked sessions", &app, &viewer, &nike_run, async || {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "mutation($u: ID!) { revokeSessions(userId: $u) }",
                json!({ "u": w.viewer.to_string() }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    })
    .await;

    // A revoked API key.
    let (_, body) = app
        .graphql(
            Some(&owner),
            "mutation { createApiKey(input: {name: \"socket\"}) { secret key { id } } }",
            json!({}),
        )
        .await;
    let secret = body["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = body["data"]["createApiKey"]["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    after_revocation_no_data("revoked key", &app, &secret, &nike_run, async || {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
                json!({ "id": key_id }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    })
    .await;

    // An expired token: one that passes the 30 s clock-skew leeway on `exp`
    // for another three seconds only.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let admin = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": w.admin.to_string(), "org_id": w.agency1.id.to_string(), "exp": now - 27 }),
        &jsonwebtoken::EncodingKey::from_secret(strata_tests::SECRET.as_bytes()),
    )
    .unwrap();
    after_revocation_no_data("expired token", &app, &admin, &nike_run, async || {
        tokio::time::sleep(Duration::from_millis(3600)).await;
    })
    .await;

    // The database agrees: the strategist holds no membership any more.
    assert_eq!(
        strata_tests::scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.memberships WHERE user_id = '{}'",
                w.strategist
            )
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_allow_list_applies_to_subscriptions() {
    let dir = std::env::temp_dir().join(format!("strata-allow-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("allow.json");
    std::fs::write(
        &manifest,
        json!({ "me": "query { me { user { id } } }" }).to_string(),
    )
    .unwrap();
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            allow_list: Some(manifest),
            ..Default::default()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let mut socket = ws_signed_in(&app, &token).await;
    send(
        &mut socket,
        subscribe("1", &uuid::Uuid::new_v4().to_string()),
    )
    .await;
    let (got, _) = answers(&mut socket, "1").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "error", "{got:?}");
    assert!(
        got[0].to_string().contains("registered operations"),
        "{got:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn subscriptions_are_charged_to_their_callers_buckets() {
    let app = TestApp::builder()
        .rate_limits(strata_server::ratelimit::RateLimitConfig {
            per_user: strata_server::ratelimit::Rate::per(3, Duration::from_secs(3600)),
            burst: 1,
            ..strata_server::ratelimit::RateLimitConfig::off()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    // connection_init costs one request, each subscribe another.
    let mut socket = ws_signed_in(&app, &token).await;
    let mut codes = Vec::new();
    for i in 0..4 {
        let id = i.to_string();
        send(
            &mut socket,
            subscribe(&id, &uuid::Uuid::new_v4().to_string()),
        )
        .await;
        let (got, _) = answers(&mut socket, &id).await;
        codes.push(got.iter().find_map(|m| {
            let s = m.to_string();
            ["RATE_LIMITED", "NOT_FOUND"]
                .into_iter()
                .find(|c| s.contains(c))
        }));
    }
    assert_eq!(
        codes,
        vec![
            Some("NOT_FOUND"),
            Some("NOT_FOUND"),
            Some("RATE_LIMITED"),
            Some("RATE_LIMITED")
        ]
    );
    // Another user of the organization is not charged for them.
    let (status, body) = app
        .graphql(
            Some(&app.token(w.admin, Some(w.agency1.id))),
            "{ me { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Transactions the test database has run so far, by PostgreSQL's own
/// counters. A pooled connection that went idle reports its counts only
/// after PostgreSQL's idle flush interval (ten seconds), so the reading
/// waits that long first: it then counts everything done before the call.
async fn transactions(su: &sea_orm::DatabaseConnection) -> i64 {
    tokio::time::sleep(Duration::from_secs(11)).await;
    strata_tests::scalar(
        su,
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .await
}

#[tokio::test]
async fn a_tenant_flooding_subscriptions_spends_its_own_budget_not_the_pool() {
    let (base, _provider) = crate::subscriptions::silent_provider().await;
    let app = TestApp::builder()
        .llm(crate::subscriptions::patient(base))
        .rate_limits(strata_server::ratelimit::RateLimitConfig {
            per_user: strata_server::ratelimit::Rate::per(30, Duration::from_secs(3600)),
            burst: 1,
            ..strata_server::ratelimit::RateLimitConfig::off()
        })
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    let flooder = app.token(w.strategist, Some(w.agency1.id));
    // A run that stays RUNNING: its subscriptions would poll for ever.
    let id = run(
        &app,
        &flooder,
        &w.nike_campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    // What the database does meanwhile anyway (the run's lease, the
    // gateway's own upkeep), over the window measured below.
    let before = transactions(&su).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle = transactions(&su).await - before;
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(ws_signed_in(&app, &flooder).await);
    }
    // A ninth socket is refused outright.
    let mut ninth = ws_connect(&app).await;
    send(
        &mut ninth,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {flooder}")}}),
    )
    .await;
    assert_eq!(until_closed(&mut ninth).await.0, Some(4429));
    // Forty subscriptions: the bucket (30, of which 9 went on the sockets,
    // the refused ninth included, and 1 on the run) admits 20, the rest are
    // refused.
    let mut admitted = 0;
    let mut limited = 0;
    for (i, socket) in sockets.iter_mut().enumerate() {
        for j in 0..5 {
            let sid = format!("{i}-{j}");
            send(socket, subscribe(&sid, &id)).await;
        }
    }
    for (i, socket) in sockets.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < 5 {
            let msg = crate::agents::next_json(socket).await.expect("an answer");
            let Some(sid) = msg["id"]
                .as_str()
                .filter(|s| s.starts_with(&format!("{i}-")))
            else {
                continue;
            };
            if !seen.insert(sid.to_owned()) {
                continue;
            }
            if msg.to_string().contains("RATE_LIMITED") {
                limited += 1;
            } else {
                assert_eq!(msg["type"], "next", "{msg}");
                admitted += 1;
            }
        }
    }
    assert_eq!((admitted, limited), (20, 20));
    // Its bucket empty, the flooder's 20 open subscriptions poll no more:
    // over six seconds (three poll periods) they would have read 60 times.
    let before = transactions(&su).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = transactions(&su).await - before;
    assert!(
        during <= idle + 5,
        "{during} transactions while the flooder's subscriptions waited, {idle} without them"
    );
    // Another tenant is served throughout, from its own buckets.
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    for _ in 0..10 {
        let (status, body) = app
            .graphql(Some(&other), "{ organization { id } }", json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}
