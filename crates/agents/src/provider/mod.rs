//! LLM providers behind one object-safe trait, [`LlmProvider`]: an
//! OpenAI-compatible chat-completions client ([`OpenAiProvider`]) and the
//! deterministic [`OfflineProvider`], the default when nothing is configured.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod offline;
mod openai;
mod sse;

pub use offline::OfflineProvider;
pub use openai::{OpenAiConfig, OpenAiProvider};

/// Who says a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// The rules.
    System,
    /// The task and its data.
    User,
    /// The model.
    Assistant,
}

/// One chat message. Its `Debug` shows the role and length only, so that a
/// prompt cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who says it.
    pub role: ChatRole,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::User,
            content: content.into(),
        }
    }
}

impl fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("chars", &self.content.chars().count())
            .finish()
    }
}

/// A chat completion to ask for.
#[derive(Clone, PartialEq)]
pub struct CompletionRequest {
    /// The model.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// The answer a provider that runs no model gives: a deterministic draft
    /// built by the agent from the run's own context. [`OfflineProvider`]
    /// streams it; network providers ignore it and never send it.
    pub offline_draft: Option<serde_json::Value>,
}

impl fmt::Debug for CompletionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionRequest")
            .field("model", &self.model)
            .field("messages", &self.messages)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("offline_draft", &self.offline_draft.is_some())
            .finish()
    }
}

/// Tokens used by one completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Whether the numbers are estimates (about four characters a token)
    /// because the provider reported none.
    pub estimated: bool,
}

impl Usage {
    /// An estimate from the prompt and the answer, about four characters a
    /// token.
    pub fn estimate(messages: &[ChatMessage], completion: &str) -> Self {
        let prompt: usize = messages.iter().map(|m| tokens(&m.content) + 4).sum();
        Self {
            prompt_tokens: u32::try_from(prompt).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(tokens(completion)).unwrap_or(u32::MAX),
            estimated: true,
        }
    }
}

fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// A finished completion. Its `Debug` omits the text.
#[derive(Clone, PartialEq)]
pub struct Completion {
    /// The whole answer.
    pub text: String,
    /// Tokens used.
    pub usage: Usage,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// Why generation stopped (`stop`, `length`, ...), when reported.
    pub finish_reason: Option<String>,
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("chars", &self.text.chars().count())
            .field("usage", &self.usage)
            .field("model", &self.model)
            .field("finish_reason", &self.finish_reason)
            .finish()
    }
}

/// Where streamed text goes as it arrives: the deltas, in order, whose
/// concatenation is the completion's text. A sink whose receiver was dropped
/// is ignored; the completion still finishes.
#[derive(Clone, Debug, Default)]
pub struct DeltaSink {
    tx: Option<mpsc::Sender<String>>,
}

impl DeltaSink {
    /// A sink that drops everything.
    pub fn none() -> Self {
        Self::default()
    }

    /// A sink sending to `tx`. A full channel slows the provider down
    /// (backpressure); cancellation still interrupts it.
    pub fn new(tx: mpsc::Sender<String>) -> Self {
        Self { tx: Some(tx) }
    }

    /// A sink and the receiver of its deltas.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::new(tx), rx)
    }

    /// Sends one delta, unless cancelled first.
    pub(crate) async fn send(
        &self,
        delta: &str,
        cancel: &CancellationToken,
    ) -> Result<(), ProviderError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if delta.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(ProviderError::Cancelled),
            // A closed receiver means nobody listens any more; the run goes on.
            _ = tx.send(delta.to_owned()) => Ok(()),
        }
    }
}

/// Why a provider gave no completion. Messages never hold the API key, the
/// prompt or the completion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached (after retries), or is not usable.
    #[error("the model provider is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The provider answered with an error status (after retries, for 429
    /// and 5xx).
    #[error("the model provider answered HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// A short excerpt of the body, with the API key redacted.
        body: String,
    },
    /// No response within the request timeout.
    #[error("the model provider did not answer within {}", seconds(*after))]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The stream stopped delivering data for longer than the stall timeout.
    #[error("the model provider's stream stalled for {}", seconds(*after))]
    StallTimeout {
        /// The stall timeout.
        after: Duration,
    },
    /// The run was cancelled.
    #[error("the run was cancelled")]
    Cancelled,
    /// The provider's response could not be understood.
    #[error("the model provider's response is unreadable: {reason}")]
    Protocol {
        /// Why.
        reason: String,
    },
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A chat-completion provider. Object-safe: hold it as
/// `Arc<dyn LlmProvider>`.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// A short name for logs and metrics (`openai`, `offline`).
    fn name(&self) -> &'static str;

    /// The model used when a run names none.
    fn default_model(&self) -> &str;

    /// Completes `request`, sending text deltas to `sink` as they arrive.
    /// Returns [`ProviderError::Cancelled`] promptly once `cancel` fires,
    /// mid-stream included.
    async fn complete(
        &self,
        request: &CompletionRequest,
        sink: &DeltaSink,
        cancel: &CancellationToken,
    ) -> Result<Completion, ProviderError>;
}

/// The provider for a configuration: OpenAI-compatible when configured,
/// else the offline one.
pub fn build_provider(config: Option<OpenAiConfig>) -> Result<Arc<dyn LlmProvider>, ProviderError> {
    Ok(match config {
        Some(config) => Arc::new(OpenAiProvider::new(config)?),
        None => Arc::new(OfflineProvider::new()),
    })
}

/// The W3C trace context of the current span, as request headers
/// (`traceparent`, `tracestate`); empty unless traces are exported (the
/// global propagator is then set).
pub(crate) fn trace_context() -> reqwest::header::HeaderMap {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    struct Injector<'a>(&'a mut reqwest::header::HeaderMap);
    impl opentelemetry::propagation::Injector for Injector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(key.as_bytes()),
                reqwest::header::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    let mut headers = reqwest::header::HeaderMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Injector(&mut headers));
    });
    headers
}
