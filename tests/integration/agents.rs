//! Agent runs through the API: the offline model end to end, a local
//! OpenAI-compatible server (the only stand-in: it speaks the provider's wire
//! protocol), the `agentRun` subscription over a real WebSocket, quotas,
//! cancellation, recovery after a crash, and run leases between replicas.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde_json::{Value, json};
use strata_runner::Runner;
use strata_tests::scalar;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) async fn run(app: &TestApp, token: &str, campaign: &str, agent: &str) -> String {
    let data = ok(
        app,
        token,
        "mutation($c: ID!, $a: AgentKind!) { runAgent(input: {campaignId: $c, agent: $a, instructions: \"focus on spring\"}) { id status agent } }",
        json!({ "c": campaign, "a": agent }),
    )
    .await;
    assert_eq!(data["runAgent"]["agent"], agent);
    data["runAgent"]["id"].as_str().unwrap().to_owned()
}

/// Polls the run until it ends; returns it.
pub(crate) async fn ended(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..200 {
        let data = ok(
            app,
            token,
            "query($id: ID!) { agentRun(id: $id) { id status agent output error errorCode usage { totalTokens } } }",
            json!({ "id": id }),
        )
        .await;
        let status = data["agentRun"]["status"].as_str().unwrap_or("").to_owned();
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&status.as_str()) {
            return data["agentRun"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end");
}

pub(crate) async fn setup(app: TestApp) -> (TestApp, World, DatabaseConnection) {
    let (world, su) = World::on(&app).await;
    (app, world, su)
}

#[tokio::test]
async fn every_agent_runs_end_to_end_offline_and_only_its_tenant_and_client_read_it() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let nike_campaign = w.nike_campaigns[0].to_string();
    let adidas_campaign = w.adidas_campaigns[0].to_string();
    let mut nike_runs = Vec::new();
    for agent in [
        "BUSINESS_STRATEGY",
        "BRAND_VOICE",
        "PERSONA_BUILDER",
        "CAMPAIGN_PLANNER",
    ] {
        for (token, campaign) in [
            (&strategist, &nike_campaign),
            (&sme, &w.sme1.campaigns[0].to_string()),
        ] {
            let id = run(&app, token, campaign, agent).await;
            let done = ended(&app, token, &id).await;
            assert_eq!(done["status"], "SUCCEEDED", "{agent}: {done}");
            assert_eq!(done["output"]["version"], 1, "{agent}");
            assert_eq!(done["output"]["kind"], agent);
            assert!(done["usage"]["totalTokens"].as_u64().unwrap() > 0);
            if token == &strategist {
                nike_runs.push(id);
            }
        }
    }
    // Stored in the tenant's own schema, with one audit row per run.
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM tenant_b.outputs WHERE client_id = '{}' AND status = 'SUCCEEDED' AND output->>'version' = '1'", w.nike)).await,
        4
    );
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.agent_outputs WHERE org_id = '{}' AND status = 'SUCCEEDED' AND output IS NOT NULL", w.sme1.id)).await,
        4
    );
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.audit_log WHERE org_id = '{}' AND operation = 'runAgent'", w.agency1.id)).await,
        4
    );
    // The campaign lists its outputs (the seeded one and the four new).
    let outputs = ok(
        &app,
        &strategist,
        "query($id: ID!) { campaign(id: $id) { outputs { totalCount edges { node { agent content } } } } }",
        json!({ "id": nike_campaign }),
    )
    .await;
    assert_eq!(outputs["campaign"]["outputs"]["totalCount"], 5);
    // Each output typed by agent holds exactly its stored document.
    let typed = ok(
        &app,
        &strategist,
        "query($id: ID!) { campaign(id: $id) { outputs { nodes { agent content result { __typename
           ... on BusinessStrategyResult { version summary positioning objectives recommendations
                 swot { strengths weaknesses opportunities threats } }
           ... on BrandVoiceResult { version summary tone do dont sampleMessages }
           ... on PersonaSetResult { version personas { name description goals painPoints channels } }
           ... on CampaignPlanResult { version summary channels kpis phases { name weeks activities } }
         } run { result { __typename } } } } } }",
        json!({ "id": nike_campaign }),
    )
    .await;
    let mut kinds = std::collections::BTreeSet::new();
    for node in typed["campaign"]["outputs"]["nodes"].as_array().unwrap() {
        if node["content"]["version"] != 1 {
            continue;
        }
        let mut result = node["result"].clone();
        let typename = result["__typename"].as_str().unwrap().to_owned();
        assert_eq!(node["run"]["result"]["__typename"], typename.as_str());
        result.as_object_mut().unwrap().remove("__typename");
        let mut stored = camel(&node["content"]);
        stored.as_object_mut().unwrap().remove("kind");
        assert_eq!(result, stored, "{typename}");
        kinds.insert(typename);
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    // Nike's account manager reads nike's runs; nobody outside does.
    let am = app.token(w.account_manager, Some(w.agency1.id));
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    for id in &nike_runs {
        let seen = ok(
            &app,
            &am,
            "query($id: ID!) { agentRun(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        assert!(!seen["agentRun"].is_null());
        for token in [&other, &sme] {
            let seen = ok(
                &app,
                token,
                "query($id: ID!) { agentRun(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
            assert!(seen["agentRun"].is_null());
        }
    }
    // An adidas run is invisible to nike's account manager, who cannot start
    // one either; a viewer cannot run agents at all.
    let adidas_run = run(&app, &strategist, &adidas_campaign, "BRAND_VOICE").await;
    let seen = ok(
        &app,
        &am,
        "query($id: ID!) { agentRun(id: $id) { id } }",
        json!({ "id": adidas_run }),
    )
    .await;
    assert!(seen["agentRun"].is_null());
    let (_, body) = app
        .graphql(
            Some(&am),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": adidas_campaign }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let (_, body) = app
        .graphql(
            Some(&viewer),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": nike_campaign }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
}

/// A local OpenAI-compatible server: answers chat completions as told and
/// keeps every request body.
#[derive(Clone, Default)]
pub(crate) struct Provider {
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
    pub(crate) mode: Arc<Mutex<Mode>>,
    /// Opens for answers held back by [`Mode::Hold`].
    pub(crate) gate: Arc<Notify>,
}

#[derive(Clone, Copy, Default, PartialEq)]
pub(crate) enum Mode {
    #[default]
    Answer,
    Fail,
    Stall,
    /// Streams the first half, and the rest once the gate opens.
    Hold,
}

pub(crate) fn brand_voice_answer() -> String {
    json!({
        "summary": "Bold and warm.",
        "tone": ["bold", "warm"],
        "do": ["speak plainly"],
        "dont": ["use jargon"],
        "sample_messages": ["Run your own race."]
    })
    .to_string()
}

/// A stored document with its keys as the API spells them (camelCase).
fn camel(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    let mut upper = false;
                    for ch in k.chars() {
                        if ch == '_' {
                            upper = true;
                        } else if upper {
                            key.extend(ch.to_uppercase());
                            upper = false;
                        } else {
                            key.push(ch);
                        }
                    }
                    (key, camel(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(camel).collect()),
        other => other.clone(),
    }
}

pub(crate) fn chunk(content: &str) -> String {
    let c = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
        "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": null }]
    });
    format!("data: {c}\n\n")
}

async fn completions(State(p): State<Provider>, body: axum::Json<Value>) -> Response {
    p.requests.lock().unwrap().push(body.0);
    let mode = *p.mode.lock().unwrap();
    match mode {
        Mode::Fail => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "upstream broke",
        )
            .into_response(),
        Mode::Answer | Mode::Stall | Mode::Hold => {
            let answer = brand_voice_answer();
            let (head, tail) = answer.split_at(answer.len() / 2);
            let usage = json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
                "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160 }
            });
            let first = chunk(head);
            let rest = format!("{}data: {usage}\n\ndata: [DONE]\n\n", chunk(tail));
            let gate = p.gate.clone();
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let first = first.clone();
                let rest = rest.clone();
                let gate = gate.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, std::io::Error>(first), 1)),
                        1 if mode == Mode::Stall => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            None
                        }
                        1 if mode == Mode::Hold => {
                            gate.notified().await;
                            Some((Ok(rest), 2))
                        }
                        1 => Some((Ok(rest), 2)),
                        _ => None,
                    }
                }
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

pub(crate) async fn provider() -> (Provider, String) {
    let p = Provider::default();
    let router = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (p, base)
}

fn llm(base: &str) -> strata_agents::OpenAiConfig {
    strata_agents::OpenAiConfig {
        base_url: base.to_owned(),
        model: "test-model".into(),
        api_key: Some(secrecy::SecretString::from("sk-test-key")),
        request_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(20),
        max_retries: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn a_nike_run_sends_nikes_data_and_nothing_of_adidas_and_a_failing_provider_fails_the_run_cleanly()
 {
    let (p, base) = provider().await;
    let (app, w, su) = setup(TestApp::builder().llm(llm(&base)).spawn().await).await;
    su.execute_unprepared(&format!(
        "UPDATE tenant_b.entity_data SET content = '{{\"voice\": \"just do it, nike only\"}}' WHERE client_id = '{n}' AND kind = 'BRAND_GUIDELINES';
         UPDATE tenant_b.entity_data SET name = 'Nike Runner' WHERE client_id = '{n}' AND kind = 'PERSONA';
         UPDATE tenant_b.entity_data SET content = '{{\"voice\": \"impossible is nothing, adidas only\"}}' WHERE client_id = '{a}' AND kind = 'BRAND_GUIDELINES';
         UPDATE tenant_b.entity_data SET name = 'Adidas Athlete' WHERE client_id = '{a}' AND kind = 'PERSONA';",
        n = w.nike,
        a = w.adidas
    ))
    .await
    .unwrap();
    let token = app.token(w.strategist, Some(w.agency1.id));
    let id = run(
        &app,
        &token,
        &w.nike_campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["tone"], json!(["bold", "warm"]));
    assert_eq!(done["usage"]["totalTokens"], 160);
    let sent = p.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], "test-model");
    assert_eq!(sent[0]["stream"], true);
    let prompt = sent[0]["messages"].to_string();
    assert!(prompt.contains("just do it, nike only"), "{prompt}");
    assert!(prompt.contains("Nike Runner"));
    assert!(prompt.contains("nike one"));
    assert!(!prompt.contains("adidas"), "{prompt}");
    assert!(!prompt.contains("Adidas"), "{prompt}");

    // The provider breaks: the run fails with a readable reason, nothing is
    // stored as output, and the gateway keeps serving.
    *p.mode.lock().unwrap() = Mode::Fail;
    let id = run(
        &app,
        &token,
        &w.nike_campaigns[1].to_string(),
        "BRAND_VOICE",
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(done["output"].is_null());
    let reason = done["error"].as_str().unwrap();
    assert!(reason.contains("500"), "{reason}");
    assert!(!reason.contains("sk-test-key"));
    assert_eq!(app.get("/readyz").await, 200);
    ok(&app, &token, "{ campaigns { totalCount } }", json!({})).await;
}

#[tokio::test]
async fn cancelling_a_streaming_run_ends_it_cancelled_and_a_late_answer_changes_nothing() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Stall;
    let (app, w, su) = setup(TestApp::builder().llm(llm(&base)).spawn().await).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let id = run(
        &app,
        &token,
        &w.sme1.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    // Wait until the provider has been asked (the run is streaming).
    for _ in 0..100 {
        if !p.requests.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = ok(
        &app,
        &token,
        "mutation($id: ID!) { cancelAgentRun(id: $id) { status error } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(cancelled["cancelAgentRun"]["status"], "CANCELLED");
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "CANCELLED");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' AND status = 'CANCELLED' AND output IS NULL")).await,
        1
    );
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.audit_log WHERE operation = 'cancelAgentRun' AND target_id = '{id}'")).await,
        1
    );
}

#[tokio::test]
async fn the_monthly_token_quota_rejects_new_runs_with_rate_limited() {
    let (app, w, su) = setup(TestApp::builder().monthly_token_quota(10).spawn().await).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let campaign = w.sme1.campaigns[0].to_string();
    let id = run(&app, &token, &campaign, "BRAND_VOICE").await;
    assert_eq!(ended(&app, &token, &id).await["status"], "SUCCEEDED");
    let before = scalar(&su, "SELECT count(*) FROM public.agent_outputs").await;
    let audited = "SELECT count(*) FROM public.audit_log WHERE operation = 'runAgent'";
    let audited_before = scalar(&su, audited).await;
    let (status, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": campaign }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.agent_outputs").await,
        before
    );
    assert_eq!(
        scalar(&su, audited).await,
        audited_before,
        "a refused run was audited"
    );
    assert_eq!(app.get("/readyz").await, 200);
    // Another organization has its own quota.
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let id = run(
        &app,
        &other,
        &w.sme2.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    assert_eq!(ended(&app, &other, &id).await["status"], "SUCCEEDED");
}

#[tokio::test]
async fn the_operator_sets_an_organizations_own_quota_which_runs_and_its_members_see() {
    use clap::Parser as _;
    use secrecy::ExposeSecret as _;
    let (app, w, su) = setup(
        TestApp::builder()
            .monthly_token_quota(1_000_000)
            .spawn()
            .await,
    )
    .await;
    let cli = |args: &[&str]| {
        let mut argv = vec!["strata", "--database-url", app.test_db.url.expose_secret()];
        argv.extend(args);
        strata_server::cli::Cli::try_parse_from(argv).unwrap()
    };
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let quota = "{ me { organization { quota { monthlyTokens own usedThisMonth } } } }";
    let q = ok(&app, &token, quota, json!({})).await;
    assert_eq!(
        q["me"]["organization"]["quota"],
        json!({ "monthlyTokens": 1_000_000, "own": false, "usedThisMonth": 0 })
    );
    let campaign = w.sme1.campaigns[0].to_string();
    let id = run(&app, &token, &campaign, "BRAND_VOICE").await;
    assert_eq!(ended(&app, &token, &id).await["status"], "SUCCEEDED");
    let used = scalar(
        &su,
        &format!(
            "SELECT tokens FROM public.token_usage WHERE org_id = '{}'",
            w.sme1.id
        ),
    )
    .await;
    assert!(used > 0);

    // SME-1's own quota, below what it used: its runs stop, SME-2's go on.
    let org = w.sme1.id.to_string();
    strata_server::cli::run(cli(&["org", "set-quota", &org, "1"]))
        .await
        .unwrap();
    if std::env::var("STRATA_TEST_CITUS").is_ok_and(|v| v == "1") {
        // Every node's copy of the reference table has it.
        let copies = strata_tests::text(
            &su,
            &format!(
                "SELECT string_agg(DISTINCT result, ',') || ' on ' || count(*) FROM run_command_on_placements(
                   'public.organizations', 'SELECT monthly_token_quota FROM %s WHERE id = ''{org}''')"
            ),
        )
        .await
        .unwrap();
        assert!(copies.starts_with("1 on "), "{copies}");
        assert_ne!(copies, "1 on 1", "{copies}");
    }
    let q = ok(&app, &token, quota, json!({})).await;
    assert_eq!(
        q["me"]["organization"]["quota"],
        json!({ "monthlyTokens": 1, "own": true, "usedThisMonth": used })
    );
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": campaign }),
        )
        .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    let id = run(
        &app,
        &other,
        &w.sme2.campaigns[0].to_string(),
        "BRAND_VOICE",
    )
    .await;
    assert_eq!(ended(&app, &other, &id).await["status"], "SUCCEEDED");
    assert_eq!(
        ok(&app, &other, quota, json!({})).await["me"]["organization"]["quota"]["own"],
        false
    );
    // Back to the server's default: runs again. Each change is audited.
    strata_server::cli::run(cli(&["org", "set-quota", &org, "default"]))
        .await
        .unwrap();
    let id = run(&app, &token, &campaign, "BRAND_VOICE").await;
    assert_eq!(ended(&app, &token, &id).await["status"], "SUCCEEDED");
    assert_eq!(
        scalar(&su, &format!(
            "SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' AND operation = 'setQuota' \
             AND target_type = 'OrganizationQuota' AND actor_user_id IS NULL"
        )).await,
        2
    );
    // An organization that does not exist, and a tenant's own attempt.
    let nowhere = uuid::Uuid::now_v7().to_string();
    assert!(
        strata_server::cli::run(cli(&["org", "set-quota", &nowhere, "5"]))
            .await
            .is_err()
    );
    let refused = su
        .execute_unprepared(&format!(
            "BEGIN; SET LOCAL ROLE app_sme; SELECT set_config('app.org_id', '{org}', true);
             UPDATE public.organizations SET monthly_token_quota = 999999999 WHERE id = '{org}'; COMMIT;"
        ))
        .await;
    assert!(refused.is_err(), "a runtime role changed its own quota");
    su.execute_unprepared("ROLLBACK").await.ok();
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.organizations WHERE id = '{org}' AND monthly_token_quota IS NULL")).await,
        1
    );
}

#[tokio::test]
async fn concurrent_runs_reserve_the_quota_and_only_as_many_as_fit_are_accepted() {
    // The provider holds its answers, so accepted runs stay in flight.
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    // Room for one run's reservation, not two: a run is accepted while the
    // usage and the reservations stay below the quota.
    let quota = strata_agents::RUN_TOKEN_RESERVATION;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(patient_llm(&base))
            .monthly_token_quota(quota)
            .spawn()
            .await,
    )
    .await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let q = "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }";
    let vars = json!({ "c": w.sme1.campaigns[0].to_string() });
    let ((_, a), (_, b)) = tokio::join!(
        app.graphql(Some(&token), q, vars.clone()),
        app.graphql(Some(&token), q, vars.clone()),
    );
    let codes = [error_code(&a), error_code(&b)];
    assert_eq!(
        codes.iter().filter(|c| c.is_none()).count(),
        1,
        "exactly one accepted: {a} {b}"
    );
    assert!(codes.contains(&Some("RATE_LIMITED")), "{a} {b}");
    let runs = format!(
        "SELECT count(*) FROM public.agent_outputs WHERE org_id = '{}'",
        w.sme1.id
    );
    let before = scalar(&su, &runs).await;
    // Once the accepted run ended, its actual tokens count instead of the
    // reservation, and a new run fits again.
    p.gate.notify_waiters();
    let id = [&a, &b]
        .into_iter()
        .find_map(|body| body["data"]["runAgent"]["id"].as_str())
        .unwrap()
        .to_owned();
    for _ in 0..100 {
        p.gate.notify_waiters();
        let run = ok(
            &app,
            &token,
            "query($id: ID!) { agentRun(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
        if run["agentRun"]["status"] == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ended(&app, &token, &id).await["status"], "SUCCEEDED");
    let (_, c) = app.graphql(Some(&token), q, vars).await;
    assert_eq!(error_code(&c), None, "{c}");
    assert_eq!(scalar(&su, &runs).await, before + 1);
}

/// The quota is the organization's: an account manager, who sees only
/// nike's runs, still counts adidas's runs in flight.
#[tokio::test]
async fn runs_in_flight_count_for_the_whole_organization_whatever_the_callers_clients() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    let quota = strata_agents::RUN_TOKEN_RESERVATION;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(patient_llm(&base))
            .monthly_token_quota(quota)
            .spawn()
            .await,
    )
    .await;
    let q = "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }";
    let runs = format!(
        "SELECT count(*) FROM tenant_b.outputs WHERE org_id = '{}'",
        w.agency1.id
    );
    let before = scalar(&su, &runs).await;
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let (_, a) = app
        .graphql(
            Some(&strategist),
            q,
            json!({ "c": w.adidas_campaigns[0].to_string() }),
        )
        .await;
    assert_eq!(error_code(&a), None, "{a}");
    assert_eq!(scalar(&su, &runs).await, before + 1);
    let manager = app.token(w.account_manager, Some(w.agency1.id));
    let (_, b) = app
        .graphql(
            Some(&manager),
            q,
            json!({ "c": w.nike_campaigns[0].to_string() }),
        )
        .await;
    assert_eq!(error_code(&b), Some("RATE_LIMITED"), "{b}");
    assert_eq!(
        scalar(&su, &runs).await,
        before + 1,
        "a refused run writes nothing"
    );
    // The account manager's own reads still see only nike's runs.
    let (_, mine) = app
        .graphql(
            Some(&manager),
            "query($c: ID!) { campaign(id: $c) { outputs { totalCount } } }",
            json!({ "c": w.adidas_campaigns[0].to_string() }),
        )
        .await;
    assert!(mine["data"]["campaign"].is_null(), "{mine}");
    p.gate.notify_waiters();
}

pub(crate) async fn ws_connect(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}/graphql/ws", app.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
}

/// A WebSocket whose `connection_init` with `token` was acknowledged.
pub(crate) async fn ws_signed_in(
    app: &TestApp,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut socket = ws_connect(app).await;
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
                .to_string(),
        ))
        .await
        .unwrap();
    let ack = next_json(&mut socket).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

pub(crate) async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message in time")?;
        match msg.ok()? {
            Message::Text(t) => return serde_json::from_str(&t).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_subscription_streams_a_run_to_completion_and_strangers_get_nothing() {
    let (app, w, _su) = setup(TestApp::spawn().await).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let id = run(
        &app,
        &token,
        &w.nike_campaigns[0].to_string(),
        "CAMPAIGN_PLANNER",
    )
    .await;

    let mut socket = ws_connect(&app).await;
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { id status output } }",
                "variables": { "id": id } } })
            .to_string(),
        ))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    loop {
        let msg = next_json(&mut socket).await.expect("subscription messages");
        match msg["type"].as_str() {
            Some("next") => {
                let run = &msg["payload"]["data"]["agentRun"];
                assert_eq!(run["id"], id.as_str());
                statuses.push(run["status"].as_str().unwrap().to_owned());
                if run["status"] == "SUCCEEDED" {
                    assert_eq!(run["output"]["kind"], "CAMPAIGN_PLANNER");
                }
            }
            Some("complete") => break,
            other => panic!("unexpected {other:?}: {msg}"),
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("SUCCEEDED"),
        "{statuses:?}"
    );

    // Without a credential the connection is refused before anything runs.
    let mut socket = ws_connect(&app).await;
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": {} }).to_string(),
        ))
        .await
        .unwrap();
    let refused = next_json(&mut socket).await;
    assert!(
        refused
            .as_ref()
            .is_none_or(|m| m["type"] != "connection_ack"),
        "{refused:?}"
    );

    // Another tenant's subscription to the run gets an error, no data.
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    let mut socket = ws_connect(&app).await;
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {other}") } }).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut socket).await.unwrap()["type"],
        "connection_ack"
    );
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { agentRun(id: $id) { id status } }",
                "variables": { "id": id } } })
            .to_string(),
        ))
        .await
        .unwrap();
    let msg = next_json(&mut socket).await.unwrap();
    assert!(msg["payload"]["data"].is_null(), "{msg}");
    assert!(msg.to_string().contains("NOT_FOUND"), "{msg}");
    assert!(!msg.to_string().contains("CAMPAIGN_PLANNER"), "{msg}");
}

#[tokio::test]
async fn runs_left_unfinished_by_a_crash_are_failed_through_a_role_that_sees_nothing_else() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    su.execute_unprepared(&format!(
        "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, input) VALUES ('{o}', gen_random_uuid(), '{c}', 'BRAND_VOICE', 'RUNNING', '{{\"secret\": 1}}');
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status) VALUES ('{a}', gen_random_uuid(), '{n}', '{nc}', 'BRAND_VOICE', 'QUEUED');",
        o = w.sme1.id,
        c = w.sme1.campaigns[0],
        a = w.agency1.id,
        n = w.nike,
        nc = w.nike_campaigns[0]
    ))
    .await
    .unwrap();
    // Nothing renews the leases of a crashed process's runs; with no stale
    // window at all, every unfinished run nobody holds has expired.
    let failed =
        strata_persistence::maintenance::fail_stale(&app.db, "interrupted", Duration::ZERO, &[])
            .await
            .unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM (SELECT status FROM public.agent_outputs UNION ALL SELECT status FROM tenant_b.outputs) s WHERE status IN ('QUEUED', 'RUNNING')").await,
        0
    );
    // The maintenance role cannot read content, nor finished runs.
    for sql in [
        "SELECT input FROM public.agent_outputs",
        "SELECT output FROM tenant_b.outputs",
        "SELECT name FROM public.campaigns",
    ] {
        let denied = su
            .execute_unprepared(&format!("BEGIN; SET LOCAL ROLE app_maint; {sql}; COMMIT;"))
            .await;
        su.execute_unprepared("ROLLBACK").await.ok();
        assert!(denied.is_err(), "app_maint ran {sql}");
    }
}

#[tokio::test]
async fn over_the_websocket_only_subscriptions_run() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let mut socket = ws_signed_in(&app, &token).await;
    for (id, query) in [
        ("q", "{ organization { id } }"),
        (
            "m",
            "mutation { createCampaign(input: {name: \"over ws\"}) { id } }",
        ),
    ] {
        socket
            .send(Message::text(
                json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string(),
            ))
            .await
            .unwrap();
        let msg = next_json(&mut socket).await.unwrap();
        assert_eq!(msg["id"], id, "{msg}");
        // Refused before it runs: as an error message, or as a result with
        // only errors.
        let text = match msg["type"].as_str() {
            Some("error") => msg["payload"][0]["message"].as_str(),
            Some("next") => {
                assert!(msg["payload"]["data"].is_null(), "{msg}");
                msg["payload"]["errors"][0]["message"].as_str()
            }
            _ => None,
        }
        .unwrap_or_default();
        assert!(text.contains("only subscriptions"), "{msg}");
        if msg["type"] == "next" {
            assert_eq!(next_json(&mut socket).await.unwrap()["type"], "complete");
        }
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
}

/// Settings for a run held open by [`Mode::Hold`] as long as a test needs.
pub(crate) fn patient_llm(base: &str) -> strata_agents::OpenAiConfig {
    strata_agents::OpenAiConfig {
        stall_timeout: Duration::from_secs(600),
        ..llm(base)
    }
}

/// Polls `sql` (a count) until it is `want`; panics after `within`.
pub(crate) async fn until(su: &DatabaseConnection, sql: &str, want: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if scalar(su, sql).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql} never gave {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_another_gateway_executes_keeps_its_lease_and_survives_a_replica_starting() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    let (a, w, su) = setup(TestApp::builder().llm(patient_llm(&base)).spawn().await).await;
    let token = a.token(w.sme1.owner, Some(w.sme1.id));
    let id = run(&a, &token, &w.sme1.campaigns[0].to_string(), "BRAND_VOICE").await;
    for _ in 0..500 {
        if !p.requests.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        p.requests.lock().unwrap().len(),
        1,
        "the run never asked the provider"
    );
    let running = format!(
        "SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' AND status = 'RUNNING' AND error IS NULL"
    );
    assert_eq!(scalar(&su, &running).await, 1);

    // As if gateway A had been executing the run for ten minutes: only the
    // leases it renews keep the run from being taken for abandoned.
    su.execute_unprepared(&format!(
        "UPDATE public.agent_outputs SET created_at = now() - interval '11 minutes', \
         started_at = now() - interval '10 minutes', heartbeat_at = now() - interval '10 minutes' \
         WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    until(
        &su,
        &format!(
            "SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' \
             AND heartbeat_at > now() - interval '1 minute'"
        ),
        1,
        Runner::LEASE_RENEW_EVERY * 8,
    )
    .await;

    // Gateway B starts on the same database; its start-up sweep has run by
    // the time it is built, and spares the run A holds.
    let b = TestApp::builder()
        .llm(patient_llm(&base))
        .spawn_beside(&a)
        .await;
    assert_eq!(scalar(&su, &running).await, 1, "B failed A's run");
    let seen = ok(
        &b,
        &token,
        "query($id: ID!) { agentRun(id: $id) { status error } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(seen["agentRun"]["status"], "RUNNING", "{seen}");

    // A finishes the run as if nothing happened.
    p.gate.notify_one();
    let done = ended(&a, &token, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["tone"], json!(["bold", "warm"]));
    assert_eq!(p.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_run_whose_lease_expired_is_failed_by_a_running_gateway_and_no_other_run_is() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    // Arranged after the gateway started, so only its periodic sweep can
    // touch them. Only `stale` has a lease older than the window: `renewed`
    // started long ago but its lease was just renewed, `queued` was just
    // queued, `done` ended long ago.
    let stale = uuid::Uuid::new_v4();
    let renewed = uuid::Uuid::new_v4();
    let queued = uuid::Uuid::new_v4();
    let done = uuid::Uuid::new_v4();
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, created_at, started_at, heartbeat_at)
             VALUES ('{a}', '{stale}', '{n}', '{nc}', 'BRAND_VOICE', 'RUNNING', now() - interval '12 minutes', now() - interval '11 minutes', now() - interval '10 minutes');
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, created_at, started_at, heartbeat_at)
             VALUES ('{o}', '{renewed}', '{c}', 'BRAND_VOICE', 'RUNNING', now() - interval '12 minutes', now() - interval '11 minutes', now());
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status)
             VALUES ('{a}', '{queued}', '{n}', '{nc}', 'CAMPAIGN_PLANNER', 'QUEUED');
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, created_at, started_at, finished_at)
             VALUES ('{o}', '{done}', '{c}', 'BRAND_VOICE', 'SUCCEEDED', now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours');",
        o = w.sme1.id,
        c = w.sme1.campaigns[0],
        a = w.agency1.id,
        n = w.nike,
        nc = w.nike_campaigns[0]
    ))
    .await
    .unwrap();
    let before = scalar(
        &su,
        "SELECT count(*) FROM (SELECT status FROM public.agent_outputs UNION ALL SELECT status FROM tenant_b.outputs) s WHERE status = 'FAILED'",
    )
    .await;

    until(
        &su,
        &format!(
            "SELECT count(*) FROM tenant_b.outputs WHERE id = '{stale}' AND status = 'FAILED'"
        ),
        1,
        Runner::SWEEP_EVERY * 4,
    )
    .await;
    // One statement failed it; the other runs were looked at in that same
    // statement, well within the window.
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM tenant_b.outputs WHERE id = '{stale}' \
                 AND error = 'interrupted: the gateway running it stopped' AND finished_at IS NOT NULL \
                 AND output IS NULL"
            )
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM (SELECT id, status, error FROM public.agent_outputs \
                 UNION ALL SELECT id, status, error FROM tenant_b.outputs) s WHERE error IS NULL AND \
                 ((id = '{renewed}' AND status = 'RUNNING') OR (id = '{queued}' AND status = 'QUEUED') \
                 OR (id = '{done}' AND status = 'SUCCEEDED'))"
            )
        )
        .await,
        3,
        "a run whose lease had not expired was touched"
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM (SELECT status FROM public.agent_outputs UNION ALL SELECT status FROM tenant_b.outputs) s WHERE status = 'FAILED'",
        )
        .await,
        before + 1,
        "only the expired run was failed"
    );
    // Its organization reads why.
    let token = app.token(w.strategist, Some(w.agency1.id));
    let seen = ok(
        &app,
        &token,
        "query($id: ID!) { agentRun(id: $id) { status error } }",
        json!({ "id": stale.to_string() }),
    )
    .await;
    assert_eq!(seen["agentRun"]["status"], "FAILED", "{seen}");
    assert_eq!(
        seen["agentRun"]["error"],
        "interrupted: the gateway running it stopped"
    );
}

/// Runs `sql` as `role` in a transaction of its own (rolled back); returns
/// the rows it changed, or the database's refusal.
async fn as_role(su: &DatabaseConnection, role: &str, sql: &str) -> Result<u64, DbErr> {
    let txn = su.begin().await.unwrap();
    txn.execute_unprepared(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    let done = txn.execute_unprepared(sql).await.map(|r| r.rows_affected());
    txn.rollback().await.unwrap();
    done
}

#[tokio::test]
async fn the_lease_role_only_renews_unfinished_runs_to_now_and_the_maintenance_role_never_renews() {
    let db = strata_tests::TestDb::migrated().await;
    let su = db.superuser().await;
    let world = World::seed(&db.pool(2).await, &su).await;
    let unfinished = uuid::Uuid::new_v4();
    let finished = uuid::Uuid::new_v4();
    su.execute_unprepared(&format!(
        "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status) VALUES
             ('{o}', '{unfinished}', '{c}', 'BRAND_VOICE', 'RUNNING'),
             ('{o}', '{finished}', '{c}', 'BRAND_VOICE', 'SUCCEEDED');",
        o = world.sme1.id,
        c = world.sme1.campaigns[0],
    ))
    .await
    .unwrap();
    let renew = |id: uuid::Uuid| {
        format!("UPDATE public.agent_outputs SET heartbeat_at = now() WHERE id = '{id}'")
    };
    assert_eq!(
        as_role(&su, "app_lease", &renew(unfinished)).await.unwrap(),
        1
    );
    assert_eq!(
        as_role(&su, "app_lease", &renew(finished)).await.unwrap(),
        0,
        "a finished run's lease was renewed"
    );
    for sql in [
        format!(
            "UPDATE public.agent_outputs SET heartbeat_at = now() + interval '1 hour' WHERE id = '{unfinished}'"
        ),
        format!(
            "UPDATE public.agent_outputs SET heartbeat_at = now() - interval '1 hour' WHERE id = '{unfinished}'"
        ),
        format!("UPDATE public.agent_outputs SET status = 'FAILED' WHERE id = '{unfinished}'"),
        format!("UPDATE public.agent_outputs SET error = 'x' WHERE id = '{unfinished}'"),
        "SELECT status FROM public.agent_outputs".to_owned(),
        "SELECT input FROM tenant_b.outputs".to_owned(),
        "SELECT created_at FROM public.agent_outputs".to_owned(),
        format!("DELETE FROM public.agent_outputs WHERE id = '{unfinished}'"),
        "SELECT id FROM public.campaigns".to_owned(),
    ] {
        assert!(
            as_role(&su, "app_lease", &sql).await.is_err(),
            "app_lease ran {sql}"
        );
    }
    // The maintenance role reads what a lease is made of, but renews nothing.
    as_role(
        &su,
        "app_maint",
        "SELECT coalesce(heartbeat_at, started_at, created_at) FROM public.agent_outputs",
    )
    .await
    .unwrap();
    assert!(
        as_role(&su, "app_maint", &renew(unfinished)).await.is_err(),
        "app_maint renewed a lease"
    );
}

#[tokio::test]
async fn a_restarting_gateway_fails_runs_a_crash_left_running_at_once_and_spares_a_live_replicas() {
    let (p, base) = provider().await;
    *p.mode.lock().unwrap() = Mode::Hold;
    let (a, w, su) = setup(TestApp::builder().llm(patient_llm(&base)).spawn().await).await;
    // A live run on gateway A, streaming.
    let token = a.token(w.sme1.owner, Some(w.sme1.id));
    let live = run(&a, &token, &w.sme1.campaigns[0].to_string(), "BRAND_VOICE").await;
    for _ in 0..500 {
        if !p.requests.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        p.requests.lock().unwrap().len(),
        1,
        "the run never asked the provider"
    );
    // Runs a crashed process left RUNNING a moment ago: their leases were
    // renewed seconds before it stopped, well within the stale window.
    let crashed_sme = uuid::Uuid::new_v4();
    let crashed_agency = uuid::Uuid::new_v4();
    su.execute_unprepared(&format!(
        "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, created_at, started_at, heartbeat_at)
             VALUES ('{o}', '{crashed_sme}', '{c}', 'BRAND_VOICE', 'RUNNING', now() - interval '20 seconds', now() - interval '19 seconds', now() - interval '5 seconds');
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, created_at, started_at, heartbeat_at)
             VALUES ('{ag}', '{crashed_agency}', '{n}', '{nc}', 'CAMPAIGN_PLANNER', 'RUNNING', now() - interval '20 seconds', now() - interval '19 seconds', now());",
        o = w.sme1.id,
        c = w.sme1.campaigns[1],
        ag = w.agency1.id,
        n = w.nike,
        nc = w.nike_campaigns[0]
    ))
    .await
    .unwrap();

    // Gateway B starts on the same database: by the time it is built, its
    // start-up recovery has run.
    let b = TestApp::builder()
        .llm(patient_llm(&base))
        .spawn_beside(&a)
        .await;
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM (SELECT id, status, error, finished_at, output FROM public.agent_outputs \
                 UNION ALL SELECT id, status, error, finished_at, output::jsonb FROM tenant_b.outputs) s \
                 WHERE id IN ('{crashed_sme}', '{crashed_agency}') AND status = 'FAILED' \
                 AND error = 'interrupted: the gateway running it stopped' \
                 AND finished_at IS NOT NULL AND output IS NULL"
            )
        )
        .await,
        2,
        "a run a crash left RUNNING was not failed at start"
    );
    for (token, id) in [
        (token.clone(), crashed_sme.to_string()),
        (
            b.token(w.strategist, Some(w.agency1.id)),
            crashed_agency.to_string(),
        ),
    ] {
        let seen = ok(
            &b,
            &token,
            "query($id: ID!) { agentRun(id: $id) { status error } }",
            json!({ "id": id }),
        )
        .await;
        assert_eq!(seen["agentRun"]["status"], "FAILED", "{seen}");
        assert_eq!(
            seen["agentRun"]["error"],
            "interrupted: the gateway running it stopped"
        );
    }
    // A's run is alive: B spared it, and A finishes it.
    assert_eq!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM public.agent_outputs WHERE id = '{live}' AND status = 'RUNNING'")
        )
        .await,
        1,
        "B failed the run A executes"
    );
    p.gate.notify_one();
    let done = ended(&a, &token, &live).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
}
