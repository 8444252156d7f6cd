//! Agent runs that go wrong, driven through GraphQL over HTTP against the
//! real router and database: the provider refuses connections, answers 5xx
//! or 429 before it recovers, does not answer in time, stalls mid-stream, or
//! answers something that is not the agent's output; and an answer that
//! arrives after its run was cancelled.
//!
//! Each run must end in the right state with a reason fit for its user,
//! leave nothing half-written in the database, count no tokens unless the
//! provider answered (a succeeded run, or an answer refused as malformed or
//! invalid, which the provider billed all the same), and disturb neither the gateway nor another organization's run
//! going on at the same time.
//!
//! The provider is a local server speaking the OpenAI wire protocol. It
//! answers a request well when the run's instructions carry [`HEALTHY`], and
//! plays its script to every other request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use strata_agents::OpenAiConfig;
use strata_domain::OrgId;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;

use crate::agents::{brand_voice_answer, chunk, ended, setup};
use strata_tests::{ok, scalar, text};

/// The provider's API key; it must never reach a run's reason.
const API_KEY: &str = "sk-failure-test-key-0123456789";

/// Instructions carrying this are answered well, whatever the script says.
const HEALTHY: &str = "answer this one well";

/// Instructions of the runs the script plays to.
const PLAIN: &str = "focus on spring";

/// Tokens the provider reports for every complete answer.
const ANSWER_TOKENS: i64 = 160;

/// Each organization's monthly quota: below one answer, so a counted answer
/// uses it up and an uncounted one leaves it untouched.
const QUOTA: u64 = 100;

/// What the provider does with one request.
#[derive(Clone)]
enum Reply {
    /// Streams this text in two pieces, then the usage and `[DONE]`.
    Answer(String),
    /// This error status, with this `Retry-After` if any; the body echoes
    /// the API key, as careless servers do.
    Status(u16, Option<&'static str>),
    /// Sends nothing, long past any request timeout.
    Silent,
    /// Streams the first half of a brand voice, then falls silent.
    Stall,
    /// Streams the first half of a brand voice, and the rest once the gate
    /// opens.
    Gated(Arc<Notify>),
}

/// A local OpenAI-compatible server playing a script.
#[derive(Clone)]
struct Provider {
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// What it does once the script is played.
    otherwise: Reply,
    /// Requests the script was played to.
    scripted: Arc<AtomicUsize>,
}

impl Provider {
    fn new(script: Vec<Reply>, otherwise: Reply) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into())),
            otherwise,
            scripted: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn scripted(&self) -> usize {
        self.scripted.load(Ordering::SeqCst)
    }

    /// Serves on `listener` until the test ends.
    fn serve(&self, listener: TcpListener) {
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
    }

    /// Serves on a port of its own; returns the base URL.
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        self.serve(listener);
        base
    }
}

async fn completions(State(p): State<Provider>, body: axum::Json<Value>) -> Response {
    let reply = if body.0["messages"].to_string().contains(HEALTHY) {
        Reply::Answer(brand_voice_answer())
    } else {
        p.scripted.fetch_add(1, Ordering::SeqCst);
        let next = p.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| p.otherwise.clone())
    };
    match reply {
        Reply::Answer(text) => stream(text, None),
        Reply::Stall => stream(brand_voice_answer(), Some(Arc::new(Notify::new()))),
        Reply::Gated(gate) => stream(brand_voice_answer(), Some(gate)),
        Reply::Status(status, retry_after) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                format!("upstream trouble for key {API_KEY}, try again"),
            )
                .into_response();
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
            }
            response
        }
        Reply::Silent => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// `text` as a chat completion stream: its first half, then (once `gate`
/// opens, if there is one) its second half, the usage and `[DONE]`.
fn stream(text: String, gate: Option<Arc<Notify>>) -> Response {
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (head, tail) = text.split_at(middle);
    let usage = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "test-model",
        "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 120, "completion_tokens": 40, "total_tokens": ANSWER_TOKENS }
    });
    let first = chunk(head);
    let rest = format!("{}data: {usage}\n\ndata: [DONE]\n\n", chunk(tail));
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            if let Some(gate) = gate {
                gate.notified().await;
            }
            Ok(rest)
        }),
    );
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Settings generous enough never to fail a well-behaved run; a case
/// shortens what it tests.
fn config(base: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base.to_owned(),
        model: "test-model".into(),
        api_key: Some(secrecy::SecretString::from(API_KEY)),
        request_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(10),
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

/// An organization running agents.
struct Tenant {
    org: OrgId,
    token: String,
    campaign: String,
    /// Where its runs are stored.
    runs: &'static str,
}

/// SME-1's owner and AGENCY-1's strategist (on nike), whose runs are stored
/// in different schemas.
fn tenants(app: &TestApp, w: &World) -> (Tenant, Tenant) {
    let sme = Tenant {
        org: w.sme1.id,
        token: app.token(w.sme1.owner, Some(w.sme1.id)),
        campaign: w.sme1.campaigns[0].to_string(),
        runs: "public.agent_outputs",
    };
    let agency = Tenant {
        org: w.agency1.id,
        token: app.token(w.strategist, Some(w.agency1.id)),
        campaign: w.nike_campaigns[0].to_string(),
        runs: "tenant_b.outputs",
    };
    (sme, agency)
}

const RUN_AGENT: &str = "mutation($c: ID!, $i: String) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE, instructions: $i}) { id status } }";

/// Queues a brand voice run; returns its id.
async fn start(app: &TestApp, t: &Tenant, instructions: &str) -> String {
    let data = ok(
        app,
        &t.token,
        RUN_AGENT,
        json!({ "c": t.campaign, "i": instructions }),
    )
    .await;
    assert_eq!(data["runAgent"]["status"], "QUEUED", "{data}");
    data["runAgent"]["id"].as_str().unwrap().to_owned()
}

/// Tokens counted toward the organization's quota, all months together.
async fn counted_tokens(su: &DatabaseConnection, org: OrgId) -> i64 {
    scalar(
        su,
        &format!(
            "SELECT coalesce(sum(tokens), 0)::bigint FROM public.token_usage WHERE org_id = '{org}'"
        ),
    )
    .await
}

/// The run failed with a reason holding every one of `phrases` and nothing
/// of `secrets` or of the gateway's internals; its row holds no output, it
/// has its audit row, and it holds and counted `tokens`: the answer's when
/// the provider answered, none when no answer came.
#[expect(clippy::too_many_arguments, reason = "one call site per outcome")]
async fn assert_failed_cleanly(
    case: &str,
    su: &DatabaseConnection,
    t: &Tenant,
    id: &str,
    run: &Value,
    phrases: &[&str],
    secrets: &[&str],
    tokens: i64,
) {
    assert_eq!(run["status"], "FAILED", "{case}: {run}");
    assert!(run["output"].is_null(), "{case}: {run}");
    assert_eq!(run["usage"]["totalTokens"], tokens, "{case}: {run}");
    let reason = run["error"].as_str().unwrap_or_default();
    // Every failure has a stable code, and the reason leads with it.
    let code = run["errorCode"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && reason.starts_with(&format!("{code}: ")),
        "{case}: {run}"
    );
    for phrase in phrases {
        assert!(
            reason.contains(phrase),
            "{case}: `{reason}` should say `{phrase}`"
        );
    }
    for internal in secrets.iter().copied().chain([
        API_KEY,
        "upstream trouble",
        "SQLSTATE",
        "sqlx",
        "reqwest",
        "hyper",
        "panicked",
        "Bearer",
        "/chat/completions",
    ]) {
        assert!(
            !reason.contains(internal),
            "{case}: `{reason}` shows `{internal}`"
        );
    }
    assert_eq!(
        text(
            su,
            &format!("SELECT error FROM {} WHERE id = '{id}'", t.runs)
        )
        .await
        .as_deref(),
        Some(reason),
        "{case}: the stored reason is the one shown"
    );
    assert_eq!(
        scalar(
            su,
            &format!(
                "SELECT count(*) FROM {} WHERE id = '{id}' AND status = 'FAILED' AND output IS NULL \
                 AND finished_at IS NOT NULL AND prompt_tokens + completion_tokens = {tokens}",
                t.runs
            )
        )
        .await,
        1,
        "{case}: the failed run's row"
    );
    assert_eq!(
        counted_tokens(su, t.org).await,
        tokens,
        "{case}: a failed run counts the tokens of the answer it got, if any"
    );
    assert_audited(case, su, id).await;
}

/// The run succeeded with the provider's answer, stored and counted.
async fn assert_succeeded(case: &str, su: &DatabaseConnection, t: &Tenant, id: &str, run: &Value) {
    assert_eq!(run["status"], "SUCCEEDED", "{case}: {run}");
    assert!(run["error"].is_null(), "{case}: {run}");
    assert_eq!(run["output"]["kind"], "BRAND_VOICE", "{case}: {run}");
    assert_eq!(run["output"]["tone"], json!(["bold", "warm"]), "{case}");
    assert_eq!(run["usage"]["totalTokens"], ANSWER_TOKENS, "{case}: {run}");
    assert_eq!(
        scalar(
            su,
            &format!(
                "SELECT count(*) FROM {} WHERE id = '{id}' AND status = 'SUCCEEDED' AND error IS NULL \
                 AND output->>'kind' = 'BRAND_VOICE' AND finished_at IS NOT NULL \
                 AND prompt_tokens + completion_tokens = {ANSWER_TOKENS}",
                t.runs
            )
        )
        .await,
        1,
        "{case}: the succeeded run's row"
    );
    assert_eq!(
        counted_tokens(su, t.org).await,
        ANSWER_TOKENS,
        "{case}: a succeeded run counts its tokens"
    );
    assert_audited(case, su, id).await;
}

async fn assert_audited(case: &str, su: &DatabaseConnection, id: &str) {
    assert_eq!(
        scalar(
            su,
            &format!(
                "SELECT count(*) FROM public.audit_log WHERE operation = 'runAgent' AND target_id = '{id}'"
            )
        )
        .await,
        1,
        "{case}: the runAgent audit row"
    );
}

/// The gateway is ready and serves another tenant.
async fn assert_serving(case: &str, app: &TestApp, bystander: &str) {
    assert_eq!(app.get("/readyz").await, 200, "{case}: /readyz");
    let data = ok(app, bystander, "{ campaigns { totalCount } }", json!({})).await;
    assert_eq!(data["campaigns"]["totalCount"], 1, "{case}: {data}");
}

/// How a case's run ends.
enum Outcome {
    Succeeded,
    /// Failed without an answer, with a reason holding these phrases.
    Failed(&'static [&'static str]),
    /// Failed with an answer that was refused (and billed), with a reason
    /// holding these phrases.
    Refused(&'static [&'static str]),
}

/// One way for a provider to misbehave.
struct Case {
    name: &'static str,
    /// What the provider does with the subject's requests, in order...
    script: Vec<Reply>,
    /// ...and once the script is played.
    otherwise: Reply,
    /// Shortens the settings the case is about.
    tune: fn(&mut OpenAiConfig),
    /// Whether the agency runs the subject run (and the SME the
    /// well-behaved one), or the other way round.
    agency_subject: bool,
    outcome: Outcome,
    /// Requests the provider sees for the subject run.
    requests: usize,
}

/// Runs the case's subject run alongside a well-behaved run of another
/// organization, and checks both, the database and the gateway.
async fn check(case: Case) {
    let name = case.name;
    let provider = Provider::new(case.script, case.otherwise);
    let base = provider.start().await;
    let mut llm = config(&base);
    (case.tune)(&mut llm);
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(llm)
            .monthly_token_quota(QUOTA)
            .spawn()
            .await,
    )
    .await;
    let (sme, agency) = tenants(&app, &w);
    let (subject, neighbour) = if case.agency_subject {
        (agency, sme)
    } else {
        (sme, agency)
    };
    let bystander = app.token(w.agency2.owner, Some(w.agency2.id));

    let id = start(&app, &subject, PLAIN).await;
    let neighbours = start(&app, &neighbour, HEALTHY).await;
    assert_serving(name, &app, &bystander).await;
    let run = ended(&app, &subject.token, &id).await;
    let neighbours_run = ended(&app, &neighbour.token, &neighbours).await;

    assert_succeeded(name, &su, &neighbour, &neighbours, &neighbours_run).await;
    assert_eq!(
        provider.scripted(),
        case.requests,
        "{name}: requests the provider saw for the run"
    );
    match case.outcome {
        Outcome::Succeeded => {
            assert_succeeded(name, &su, &subject, &id, &run).await;
            // Its tokens count and use the quota up, where a failed run's
            // leave it untouched.
            let (_, body) = app
                .graphql(
                    Some(&subject.token),
                    RUN_AGENT,
                    json!({ "c": subject.campaign, "i": HEALTHY }),
                )
                .await;
            assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{name}: {body}");
        }
        Outcome::Failed(phrases) => {
            assert_failed_cleanly(name, &su, &subject, &id, &run, phrases, &[&base], 0).await;
            // The failure used none of the quota: the organization runs
            // again, and succeeds.
            let again = start(&app, &subject, HEALTHY).await;
            let run = ended(&app, &subject.token, &again).await;
            assert_eq!(run["status"], "SUCCEEDED", "{name}: {run}");
        }
        Outcome::Refused(phrases) => {
            assert_failed_cleanly(
                name,
                &su,
                &subject,
                &id,
                &run,
                phrases,
                &[&base],
                ANSWER_TOKENS,
            )
            .await;
            // The refused answer's tokens count and use the quota up.
            let (_, body) = app
                .graphql(
                    Some(&subject.token),
                    RUN_AGENT,
                    json!({ "c": subject.campaign, "i": HEALTHY }),
                )
                .await;
            assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{name}: {body}");
        }
    }
    assert_serving(name, &app, &bystander).await;
}

#[tokio::test]
async fn a_provider_refusing_connections_fails_the_run_cleanly_and_runs_succeed_once_it_is_back() {
    let name = "provider down";
    // A port held but not listened on: connecting is refused until it
    // listens. The URL carries credentials, which no reason may show.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let base = format!("http://llm-user:llm-password@{addr}/v1");
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(config(&base))
            .monthly_token_quota(QUOTA)
            .spawn()
            .await,
    )
    .await;
    let (sme, agency) = tenants(&app, &w);
    let bystander = app.token(w.agency2.owner, Some(w.agency2.id));

    let id = start(&app, &sme, PLAIN).await;
    assert_serving(name, &app, &bystander).await;
    let run = ended(&app, &sme.token, &id).await;
    assert_failed_cleanly(
        name,
        &su,
        &sme,
        &id,
        &run,
        &["unavailable", "could not connect"],
        &["llm-password", "llm-user", &addr.to_string()],
        0,
    )
    .await;
    assert_serving(name, &app, &bystander).await;

    // The provider comes back on the same address: both organizations run
    // at once on the same gateway, without a restart.
    let provider = Provider::new(Vec::new(), Reply::Answer(brand_voice_answer()));
    provider.serve(socket.listen(64).unwrap());
    let again = start(&app, &sme, PLAIN).await;
    let agencys = start(&app, &agency, PLAIN).await;
    let run = ended(&app, &sme.token, &again).await;
    assert_eq!(run["status"], "SUCCEEDED", "{name}: {run}");
    assert_succeeded(
        name,
        &su,
        &agency,
        &agencys,
        &ended(&app, &agency.token, &agencys).await,
    )
    .await;
    assert_eq!(provider.scripted(), 2, "{name}");
}

#[tokio::test]
async fn server_errors_are_retried_and_the_run_succeeds() {
    check(Case {
        name: "500s then success",
        script: vec![Reply::Status(500, None), Reply::Status(503, None)],
        otherwise: Reply::Answer(brand_voice_answer()),
        tune: |_| {},
        agency_subject: true,
        outcome: Outcome::Succeeded,
        requests: 3,
    })
    .await;
}

#[tokio::test]
async fn server_errors_beyond_the_retries_fail_the_run_with_a_generic_reason_and_none_of_the_body()
{
    check(Case {
        name: "500s throughout",
        script: Vec::new(),
        otherwise: Reply::Status(500, None),
        tune: |_| {},
        agency_subject: false,
        // The provider's body may name the operator's account or usage: the
        // tenant sees a code and a sentence of ours only.
        outcome: Outcome::Failed(&["PROVIDER_UNAVAILABLE", "HTTP 500"]),
        requests: 3,
    })
    .await;
}

#[tokio::test]
async fn too_many_requests_is_retried_after_the_wait_the_provider_asks_for() {
    check(Case {
        name: "429 with Retry-After",
        script: vec![Reply::Status(429, Some("1"))],
        otherwise: Reply::Answer(brand_voice_answer()),
        // The backoff of its own would be half a minute or more, longer than
        // a run is waited for: the run succeeds only if the retry follows
        // the provider's one second.
        tune: |c| {
            c.max_retries = 1;
            c.initial_backoff = Duration::from_secs(60);
            c.max_backoff = Duration::from_secs(60);
        },
        agency_subject: false,
        outcome: Outcome::Succeeded,
        requests: 2,
    })
    .await;
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_fails_the_run() {
    check(Case {
        name: "request timeout",
        script: Vec::new(),
        otherwise: Reply::Silent,
        tune: |c| c.request_timeout = Duration::from_secs(1),
        agency_subject: true,
        outcome: Outcome::Failed(&["did not answer within 1.0 s"]),
        requests: 1,
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_stalls_mid_way_fails_the_run_and_keeps_none_of_its_text() {
    check(Case {
        name: "stalled stream",
        script: Vec::new(),
        otherwise: Reply::Stall,
        tune: |c| c.stall_timeout = Duration::from_secs(1),
        agency_subject: false,
        outcome: Outcome::Failed(&["stalled for 1.0 s"]),
        requests: 1,
    })
    .await;
}

#[tokio::test]
async fn an_answer_that_is_not_json_fails_the_run() {
    check(Case {
        name: "malformed JSON",
        script: Vec::new(),
        otherwise: Reply::Answer(r#"{"summary": "Bold and warm.", "tone": ["bold", "#.to_owned()),
        tune: |_| {},
        agency_subject: true,
        outcome: Outcome::Refused(&["not a JSON object", "invalid JSON"]),
        requests: 1,
    })
    .await;
}

#[tokio::test]
async fn an_answer_of_the_wrong_shape_fails_the_run() {
    let wrong = json!({
        "summary": "Bold and warm.",
        "tone": "bold",
        "do": ["speak plainly"],
        "dont": ["use jargon"],
        "sample_messages": ["Run your own race."]
    });
    check(Case {
        name: "invalid output",
        script: Vec::new(),
        otherwise: Reply::Answer(wrong.to_string()),
        tune: |_| {},
        agency_subject: false,
        outcome: Outcome::Refused(&["answer is invalid", "`tone`"]),
        requests: 1,
    })
    .await;
}

/// Waits until `n` sessions of the test database wait for a lock.
async fn lock_waiters(su: &DatabaseConnection, n: i64) {
    for _ in 0..500 {
        let waiting = scalar(
            su,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// Waits until no other session of the test database is in a statement or
/// a transaction.
async fn settled(su: &DatabaseConnection) {
    for _ in 0..500 {
        let busy = scalar(
            su,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'",
        )
        .await;
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the database never settled");
}

#[tokio::test]
async fn an_answer_arriving_after_its_run_was_cancelled_is_neither_stored_nor_counted() {
    let name = "late answer";
    let gate = Arc::new(Notify::new());
    let provider = Provider::new(
        vec![Reply::Gated(gate.clone())],
        Reply::Answer(brand_voice_answer()),
    );
    let base = provider.start().await;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(config(&base))
            .monthly_token_quota(QUOTA)
            .spawn()
            .await,
    )
    .await;
    let (sme, _) = tenants(&app, &w);
    let id = start(&app, &sme, PLAIN).await;
    for _ in 0..500 {
        if provider.scripted() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(provider.scripted(), 1, "the run never asked the provider");

    // Hold the run's row, so that the cancellation and then the runner's
    // result queue up behind it in that order: the answer is complete before
    // the cancellation commits, and stored after.
    let holder = app.test_db.superuser().await;
    let hold = holder.begin().await.unwrap();
    hold.execute_unprepared(&format!(
        "SELECT 1 FROM public.agent_outputs WHERE id = '{id}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let cancel = app.graphql(
        Some(&sme.token),
        "mutation($id: ID!) { cancelAgentRun(id: $id) { status } }",
        json!({ "id": id }),
    );
    let release = async {
        lock_waiters(&su, 1).await;
        gate.notify_one();
        lock_waiters(&su, 2).await;
        hold.commit().await.unwrap();
    };
    let ((status, body), ()) = tokio::join!(cancel, release);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["cancelAgentRun"]["status"], "CANCELLED",
        "{body}"
    );
    settled(&su).await;

    let run = ended(&app, &sme.token, &id).await;
    assert_eq!(run["status"], "CANCELLED", "{name}: {run}");
    assert!(run["output"].is_null(), "{name}: {run}");
    assert_eq!(run["usage"]["totalTokens"], 0, "{name}: {run}");
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' AND status = 'CANCELLED' \
                 AND output IS NULL AND prompt_tokens = 0 AND completion_tokens = 0"
            )
        )
        .await,
        1,
        "{name}: the cancelled run's row"
    );
    assert_eq!(
        counted_tokens(&su, sme.org).await,
        0,
        "{name}: a cancelled run counts no tokens"
    );
    // The quota is untouched: the organization runs again.
    let again = start(&app, &sme, HEALTHY).await;
    assert_eq!(
        ended(&app, &sme.token, &again).await["status"],
        "SUCCEEDED",
        "{name}"
    );
}

#[tokio::test]
async fn a_campaign_beyond_the_agents_bounds_fails_the_run_with_a_reason_naming_the_field() {
    let (app, w, su) = setup(TestApp::builder().monthly_token_quota(QUOTA).spawn().await).await;
    let (mut sme, _) = tenants(&app, &w);
    // The API keeps objectives up to 4,000 characters; a prompt takes half.
    let objective = "grow ".repeat(600);
    let data = ok(
        &app,
        &sme.token,
        "mutation($o: String) { createCampaign(input: {name: \"long brief\", objective: $o}) { id } }",
        json!({ "o": objective }),
    )
    .await;
    sme.campaign = data["createCampaign"]["id"].as_str().unwrap().to_owned();
    let id = start(&app, &sme, PLAIN).await;
    let run = ended(&app, &sme.token, &id).await;
    assert_failed_cleanly(
        "input beyond bounds",
        &su,
        &sme,
        &id,
        &run,
        &["invalid agent input", "campaign.objective"],
        &["internal error"],
        0,
    )
    .await;
    let bystander = app.token(w.agency2.owner, Some(w.agency2.id));
    assert_serving("input beyond bounds", &app, &bystander).await;
}

#[tokio::test]
async fn cancelling_a_run_mid_stream_ends_it_cancelled_with_nothing_stored_while_another_succeeds()
{
    let name = "cancellation mid-stream";
    let provider = Provider::new(Vec::new(), Reply::Stall);
    let base = provider.start().await;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(config(&base))
            .monthly_token_quota(QUOTA)
            .spawn()
            .await,
    )
    .await;
    let (sme, agency) = tenants(&app, &w);
    let id = start(&app, &sme, PLAIN).await;
    for _ in 0..500 {
        if provider.scripted() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(provider.scripted(), 1, "the run never asked the provider");
    // The other organization's run goes on meanwhile.
    let neighbours = start(&app, &agency, HEALTHY).await;
    let cancelled = ok(
        &app,
        &sme.token,
        "mutation($id: ID!) { cancelAgentRun(id: $id) { status error } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        cancelled["cancelAgentRun"]["status"], "CANCELLED",
        "{cancelled}"
    );
    let run = ended(&app, &sme.token, &id).await;
    assert_eq!(run["status"], "CANCELLED", "{run}");
    assert_eq!(run["error"], "cancelled on request", "{run}");
    assert!(run["output"].is_null(), "{run}");
    assert_eq!(run["usage"]["totalTokens"], 0, "{run}");
    let neighbours_run = ended(&app, &agency.token, &neighbours).await;
    assert_succeeded(name, &su, &agency, &neighbours, &neighbours_run).await;
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM {} WHERE id = '{id}' AND status = 'CANCELLED' AND output IS NULL \
                 AND error = 'cancelled on request' AND prompt_tokens = 0 AND completion_tokens = 0 \
                 AND finished_at IS NOT NULL",
                sme.runs
            )
        )
        .await,
        1,
        "the cancelled run's row"
    );
    assert_eq!(
        counted_tokens(&su, sme.org).await,
        0,
        "a cancelled run counts no tokens"
    );
    assert_audited(name, &su, &id).await;
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.audit_log WHERE operation = 'cancelAgentRun' AND target_id = '{id}'"
            )
        )
        .await,
        1,
        "the cancelAgentRun audit row"
    );
    let bystander = app.token(w.agency2.owner, Some(w.agency2.id));
    assert_serving(name, &app, &bystander).await;
}
