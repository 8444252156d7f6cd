//! A WebSocket keeps being checked after `connection_init`: a caller whose
//! membership is removed stops receiving a run's changes.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use strata_tests::TestApp;
use strata_tests::world::World;
use tokio_tungstenite::tungstenite::Message;

use crate::agents::{next_json, ws_signed_in};

/// A model server that accepts connections and never answers: runs against
/// it stay RUNNING until the request timeout.
async fn silent_provider() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (base, task)
}

#[tokio::test]
async fn a_removed_member_stops_receiving_a_runs_changes() {
    let (base, _provider) = silent_provider().await;
    let app = TestApp::builder()
        .llm(strata_agents::OpenAiConfig {
            base_url: base,
            model: "test-model".into(),
            api_key: None,
            request_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(120),
            max_retries: 0,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        })
        .spawn()
        .await;
    let su = app.test_db.superuser().await;
    let w = World::seed(&app.db, &su).await;
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (_, body) = app
        .graphql(
            Some(&strategist),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": w.nike_campaigns[0].to_string() }),
        )
        .await;
    let id = body["data"]["runAgent"]["id"].as_str().unwrap().to_owned();

    let mut socket = ws_signed_in(&app, &strategist).await;
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { id status } }",
                "variables": { "id": id },
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    let first = next_json(&mut socket).await.unwrap();
    assert_eq!(first["payload"]["data"]["agentRun"]["id"], id, "{first}");

    // The owner removes the strategist; the stream ends within a poll or
    // two, with UNAUTHENTICATED, while the run itself goes on.
    let (_, body) = app
        .graphql(
            Some(&owner),
            "mutation($u: ID!) { removeMember(userId: $u) }",
            json!({ "u": w.strategist.to_string() }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let mut ended_with: Option<Value> = None;
    for _ in 0..10 {
        let Some(msg) = next_json(&mut socket).await else {
            break;
        };
        match msg["type"].as_str() {
            Some("next") if msg["payload"]["errors"].is_array() => {
                ended_with = Some(msg);
                break;
            }
            Some("error") => {
                ended_with = Some(msg);
                break;
            }
            Some("complete") => break,
            _ => continue,
        }
    }
    let msg = ended_with.expect("the stream ended with an error");
    let code = msg["payload"]["errors"][0]["extensions"]["code"]
        .as_str()
        .or_else(|| msg["payload"][0]["extensions"]["code"].as_str());
    assert_eq!(code, Some("UNAUTHENTICATED"), "{msg}");
    let status: String = {
        use sea_orm::ConnectionTrait;
        su.query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT status::text FROM tenant_b.outputs WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
    };
    assert_eq!(status, "RUNNING");
}
