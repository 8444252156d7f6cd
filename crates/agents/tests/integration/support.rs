//! A local OpenAI-compatible server that replays scripted replies and
//! records what it was sent, and the contexts the tests run on.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use strata_agents::{
    AgentContext, AgentError, CampaignInfo, ClientInfo, OpenAiConfig, OpenAiProvider, PersonaInfo,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The API key the tests configure; it must never appear in an error.
pub const KEY: &str = "sk-test-0123456789abcdef-SECRET";

/// One piece of a streamed body.
#[derive(Clone, Debug)]
pub enum Piece {
    /// Bytes to send as one write.
    Bytes(String),
    /// A pause.
    Wait(Duration),
    /// Send nothing more, and keep the connection open.
    Hang,
}

/// What the server answers one request with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status with a body and headers.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// A 401 whose body echoes the request's `Authorization` header, as a
    /// careless server might.
    EchoAuthorization,
    /// A `text/event-stream` body, written piece by piece.
    Sse(Vec<Piece>),
    /// A non-streamed `application/json` body.
    Json(Value),
    /// The reply, after a pause before the response starts.
    Delayed(Duration, Box<Reply>),
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    /// The text of every message, joined.
    pub fn prompt(&self) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

/// The server.
pub struct MockServer {
    pub base_url: String,
    shared: Arc<Shared>,
}

impl MockServer {
    /// Starts a server on a free loopback port answering, in order, with
    /// `script`; once the script runs out it answers 500.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// A provider for this server with short timeouts and backoffs.
    pub fn provider(&self) -> OpenAiProvider {
        self.provider_with(|_| {})
    }

    /// Same, with `tweak` applied to the configuration.
    pub fn provider_with(&self, tweak: impl FnOnce(&mut OpenAiConfig)) -> OpenAiProvider {
        let mut config = config(&self.base_url);
        tweak(&mut config);
        OpenAiProvider::new(config).unwrap()
    }
}

/// The test configuration for `base_url`.
pub fn config(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base_url.to_owned(),
        model: "test-model".to_owned(),
        api_key: Some(KEY.to_owned().into()),
        request_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(2),
        max_retries: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(2),
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.requests.lock().unwrap().push(Recorded {
        authorization: authorization.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = shared.script.lock().unwrap().pop_front();
    let reply = reply.unwrap_or(Reply::Status {
        status: 500,
        headers: vec![],
        body: "script exhausted".to_owned(),
    });
    respond(reply, authorization).await
}

async fn respond(mut reply: Reply, authorization: Option<String>) -> Response {
    while let Reply::Delayed(pause, inner) = reply {
        tokio::time::sleep(pause).await;
        reply = *inner;
    }
    match reply {
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::EchoAuthorization => (
            StatusCode::UNAUTHORIZED,
            json!({"error": {"message": format!(
                "Incorrect API key provided: {}",
                authorization.unwrap_or_default()
            )}})
            .to_string(),
        )
            .into_response(),
        Reply::Json(value) => (
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
        Reply::Sse(pieces) => {
            let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(4);
            tokio::spawn(async move {
                for piece in pieces {
                    match piece {
                        Piece::Bytes(bytes) => {
                            if tx.send(Ok(bytes)).await.is_err() {
                                return;
                            }
                        }
                        Piece::Wait(pause) => tokio::time::sleep(pause).await,
                        // Ends when the client goes away.
                        Piece::Hang => tx.closed().await,
                    }
                }
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(ReceiverStream::new(rx)),
            )
                .into_response()
        }
        Reply::Delayed(..) => unreachable!("delays are unwrapped above"),
    }
}

/// One `chat.completion.chunk` event carrying `content`.
pub fn content_event(content: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "test-model-2026-01-01",
        "choices": [{"index": 0, "delta": {"content": content}, "logprobs": null, "finish_reason": null}],
        "usage": null,
    });
    format!("data: {chunk}\n\n")
}

/// The events that end a stream: the finish reason, the usage, `[DONE]`.
pub fn closing_events(prompt_tokens: u32, completion_tokens: u32) -> Vec<String> {
    let finish = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "test-model-2026-01-01",
        "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}],
        "usage": null,
    });
    let usage = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": "test-model-2026-01-01",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    });
    vec![
        format!("data: {finish}\n\n"),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ]
}

/// A complete stream answering `text`, cut into `parts` content events.
pub fn stream_of(text: &str, parts: usize) -> Reply {
    let mut pieces: Vec<Piece> = split(text, parts)
        .into_iter()
        .map(|part| Piece::Bytes(content_event(&part)))
        .collect();
    pieces.extend(closing_events(321, 123).into_iter().map(Piece::Bytes));
    Reply::Sse(pieces)
}

/// `text` in `parts` pieces of similar length, on character boundaries.
pub fn split(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A valid brand-voice answer.
pub fn brand_voice_answer() -> String {
    json!({
        "summary": "Bold, inspiring and direct.",
        "tone": ["bold", "inspiring"],
        "do": ["Speak to the athlete in everyone"],
        "dont": ["Sound passive"],
        "sample_messages": ["Your next mile starts today."]
    })
    .to_string()
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// An agency's context for its client Nike.
pub fn nike() -> AgentContext {
    AgentContext {
        organization: "Stride Agency".to_owned(),
        client: Some(ClientInfo {
            name: "Nike".to_owned(),
            slug: "nike".to_owned(),
        }),
        campaign: CampaignInfo {
            name: "Just Do It 2026".to_owned(),
            objective: Some("Grow running club sign-ups by 20%".to_owned()),
        },
        brand_guidelines: object(json!({
            "tagline": "Just do it",
            "tone": ["bold", "inspiring", "direct"],
            "do": ["Celebrate every athlete"],
            "avoid": ["Passive voice"],
            "values": ["Innovation", "Performance"]
        })),
        personas: vec![PersonaInfo {
            name: "Marathon Maya".to_owned(),
            description: Some("Runs three marathons a year.".to_owned()),
            attributes: object(json!({
                "goals": ["Beat her personal best"],
                "pain_points": ["Injuries from worn shoes"],
                "channels": ["Instagram", "Strava"]
            })),
        }],
        instructions: Some("Focus on the spring season.".to_owned()),
        input: None,
    }
}

/// The same agency's context for its client Adidas.
pub fn adidas() -> AgentContext {
    AgentContext {
        organization: "Stride Agency".to_owned(),
        client: Some(ClientInfo {
            name: "Adidas".to_owned(),
            slug: "adidas".to_owned(),
        }),
        campaign: CampaignInfo {
            name: "Impossible Is Nothing Relaunch".to_owned(),
            objective: Some("Win back streetwear fans".to_owned()),
        },
        brand_guidelines: object(json!({
            "tagline": "Impossible is nothing",
            "tone": ["playful", "urban"],
            "values": ["Creativity", "Originals heritage"]
        })),
        personas: vec![PersonaInfo {
            name: "Streetwear Sam".to_owned(),
            description: Some("Collects limited sneaker drops.".to_owned()),
            attributes: object(json!({
                "goals": ["Stand out"],
                "channels": ["TikTok", "Discord"]
            })),
        }],
        instructions: None,
        input: None,
    }
}

/// An SME's context with nothing but names.
pub fn bare_sme() -> AgentContext {
    AgentContext {
        organization: "Corner Bakery".to_owned(),
        client: None,
        campaign: CampaignInfo {
            name: "Sourdough Saturdays".to_owned(),
            objective: None,
        },
        brand_guidelines: serde_json::Map::new(),
        personas: vec![],
        instructions: None,
        input: None,
    }
}

/// Checks that an error's text and debug form hold no secret.
pub fn assert_secret_free(error: &AgentError) {
    let display = error.to_string();
    let debug = format!("{error:?}");
    for text in [&display, &debug] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("SECRET"), "part of the key leaked: {text}");
    }
}

/// Collects everything left in a delta receiver.
pub fn drain(rx: &mut mpsc::Receiver<String>) -> Vec<String> {
    let mut deltas = Vec::new();
    while let Ok(delta) = rx.try_recv() {
        deltas.push(delta);
    }
    deltas
}
