//! A WebSocket keeps being checked after `connection_init`: a caller whose
//! membership is removed stops receiving a run's changes.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use strata_tests::TestApp;
use strata_tests::world::World;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use strata_tests::scalar;

use crate::agents::{
    Mode, Provider, brand_voice_answer, ended, next_json, patient_llm, provider, run, setup,
    ws_signed_in,
};

/// A model server that accepts connections and never answers: runs against
/// it stay RUNNING until the request timeout.
pub(crate) async fn silent_provider() -> (String, tokio::task::JoinHandle<()>) {
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

/// A provider configuration that waits two minutes for `base` to answer.
pub(crate) fn patient(base: String) -> strata_agents::OpenAiConfig {
    strata_agents::OpenAiConfig {
        base_url: base,
        model: "test-model".into(),
        api_key: None,
        request_timeout: Duration::from_secs(120),
        stall_timeout: Duration::from_secs(120),
        max_retries: 0,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
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
    let (w, su) = World::on(&app).await;
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

/// Waits until the provider has been asked `n` times.
async fn asked(p: &Provider, n: usize) {
    for _ in 0..500 {
        if p.requests.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the provider was asked fewer than {n} times");
}

fn run_status(id: &str) -> String {
    format!("SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' AND status = 'QUEUED'")
}

/// Reads a subscription's events until `complete`: the deduplicated
/// statuses and every partial output seen.
async fn follow(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: &str,
) -> (Vec<String>, Vec<String>, Value) {
    let mut statuses: Vec<String> = Vec::new();
    let mut partials = Vec::new();
    let mut last = Value::Null;
    loop {
        let msg = next_json(socket).await.expect("subscription messages");
        match msg["type"].as_str() {
            Some("next") => {
                let run = &msg["payload"]["data"]["agentRun"];
                assert_eq!(run["id"], id, "{msg}");
                let status = run["status"].as_str().unwrap().to_owned();
                if statuses.last() != Some(&status) {
                    statuses.push(status);
                }
                if let Some(p) = run["partialOutput"].as_str() {
                    partials.push(p.to_owned());
                }
                last = run.clone();
            }
            Some("complete") => return (statuses, partials, last),
            other => panic!("unexpected {other:?}: {msg}"),
        }
    }
}

#[tokio::test]
async fn a_queued_run_streams_every_status_and_its_text_once_its_organization_has_a_slot() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(patient_llm(&base))
            .agent_concurrency(4, 1)
            .spawn()
            .await,
    )
    .await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let held = run(
        &app,
        &token,
        &w.sme1.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    asked(&p, 1).await;
    // B waits behind A: its organization may run one at a time.
    let queued = run(
        &app,
        &token,
        &w.sme1.campaigns[1].to_string(),
        "BRAND_VOICE",
    )
    .await;
    *p.mode.lock().unwrap() = Mode::Answer;

    let mut socket = ws_signed_in(&app, &token).await;
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { id status partialOutput output } }",
                "variables": { "id": queued },
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    let first = next_json(&mut socket).await.unwrap();
    assert_eq!(
        first["payload"]["data"]["agentRun"]["status"], "QUEUED",
        "{first}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        scalar(&su, &run_status(&queued)).await,
        1,
        "B started beside A"
    );
    assert_eq!(p.requests.lock().unwrap().len(), 1, "B asked the provider");

    p.gate.notify_one();
    let (mut statuses, partials, last) = follow(&mut socket, &queued).await;
    statuses.insert(0, "QUEUED".to_owned());
    statuses.dedup();
    assert_eq!(statuses, ["QUEUED", "RUNNING", "SUCCEEDED"], "{statuses:?}");
    let answer = brand_voice_answer();
    assert!(
        partials.iter().any(|p| !p.is_empty()),
        "no partial output: {partials:?}"
    );
    for p in &partials {
        assert!(
            answer.starts_with(p.as_str()),
            "{p:?} is not a prefix of the answer"
        );
    }
    assert_eq!(
        partials.last(),
        Some(&answer),
        "the whole text was never published"
    );
    assert_eq!(last["output"]["tone"], json!(["bold", "warm"]), "{last}");
    assert_eq!(ended(&app, &token, &held).await["status"], "SUCCEEDED");
}

#[tokio::test]
async fn the_overall_bound_holds_another_organizations_run_until_a_slot_frees() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(patient_llm(&base))
            .agent_concurrency(1, 1)
            .spawn()
            .await,
    )
    .await;
    let first = app.token(w.sme1.owner, Some(w.sme1.id));
    let second = app.token(w.sme2.owner, Some(w.sme2.id));
    let held = run(
        &app,
        &first,
        &w.sme1.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    asked(&p, 1).await;
    let waiting = run(
        &app,
        &second,
        &w.sme2.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    *p.mode.lock().unwrap() = Mode::Answer;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        scalar(&su, &run_status(&waiting)).await,
        1,
        "the other organization's run started"
    );
    assert_eq!(p.requests.lock().unwrap().len(), 1);

    p.gate.notify_one();
    assert_eq!(ended(&app, &first, &held).await["status"], "SUCCEEDED");
    let done = ended(&app, &second, &waiting).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(p.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_websocket_authenticated_by_its_upgrade_header_receives_a_runs_events() {
    let (app, w, _su) = setup(TestApp::spawn().await).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let id = run(
        &app,
        &token,
        &w.nike_campaigns[0].to_string(),
        "PERSONA_BUILDER",
    )
    .await;

    let url = format!("{}/graphql/ws", app.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {}}).to_string(),
        ))
        .await
        .unwrap();
    let ack = next_json(&mut socket).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { id status partialOutput output } }",
                "variables": { "id": id },
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    let (statuses, _, last) = follow(&mut socket, &id).await;
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("SUCCEEDED"),
        "{statuses:?}"
    );
    assert_eq!(last["output"]["kind"], "PERSONA_BUILDER", "{last}");
}
