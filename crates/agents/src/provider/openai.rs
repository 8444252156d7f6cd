//! OpenAI-compatible chat completions over HTTP, streamed.
//!
//! `POST {base_url}/chat/completions` with `stream: true`; the answer is read
//! as Server-Sent Events, or as one JSON document when the server does not
//! stream. Connection failures, 429 and 5xx are retried with exponential
//! backoff and jitter (honouring `Retry-After`) until a successful response
//! starts; nothing is retried after that. The API key goes into the
//! `Authorization` header only: it is never logged and every error text
//! taken from the server has it redacted.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::sse::SseDecoder;
use super::{
    ChatMessage, Completion, CompletionRequest, DeltaSink, LlmProvider, ProviderError, Usage,
};

/// Longest completion accepted, in bytes.
const MAX_COMPLETION_BYTES: usize = 256 * 1024;
/// Largest single event or non-streamed body accepted, in bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest excerpt of an error body kept in an error, in characters.
const EXCERPT_CHARS: usize = 200;

/// How to reach an OpenAI-compatible server.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// The API root, e.g. `https://api.openai.com/v1`; `/chat/completions`
    /// is appended.
    pub base_url: String,
    /// The model used when a run names none.
    pub model: String,
    /// Sent as a bearer token, when set.
    pub api_key: Option<SecretString>,
    /// Longest wait for a response to start (connecting included), per
    /// attempt.
    pub request_timeout: Duration,
    /// Longest silence once the response has started.
    pub stall_timeout: Duration,
    /// Retries after the first attempt, for connection failures, 429 and
    /// 5xx.
    pub max_retries: u32,
    /// The first backoff; it doubles with each retry.
    pub initial_backoff: Duration,
    /// The longest backoff, `Retry-After` included.
    pub max_backoff: Duration,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            api_key: None,
            request_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(30),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The OpenAI-compatible provider.
#[derive(Debug)]
pub struct OpenAiProvider {
    client: reqwest::Client,
    endpoint: Url,
    config: OpenAiConfig,
}

impl OpenAiProvider {
    /// A provider for `config`. Fails when the base URL is not an absolute
    /// `http` or `https` URL.
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let invalid_url = || ProviderError::Unavailable {
            reason: "the provider base URL is not an absolute http(s) URL".to_owned(),
        };
        let base = Url::parse(&config.base_url).map_err(|_| invalid_url())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid_url());
        }
        let endpoint = format!("{}/chat/completions", base.as_str().trim_end_matches('/'));
        let endpoint = Url::parse(&endpoint).map_err(|_| invalid_url())?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("strata-agents/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ProviderError::Unavailable {
                reason: "the HTTP client could not be built".to_owned(),
            })?;
        Ok(Self {
            client,
            endpoint,
            config,
        })
    }

    /// Sends the request until a successful response starts, retrying what
    /// may succeed later.
    async fn send(
        &self,
        body: &WireRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Response, ProviderError> {
        let mut attempt: u32 = 0;
        loop {
            let mut request = self
                .client
                .post(self.endpoint.clone())
                .header(ACCEPT, "text/event-stream, application/json")
                .json(body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            // The trace of the model call goes with it (`traceparent`),
            // when traces are exported.
            request = request.headers(super::trace_context());
            let sent = cancellable(
                cancel,
                tokio::time::timeout(self.config.request_timeout, request.send()),
            )
            .await?;
            let last = attempt >= self.config.max_retries;
            let (status, retry_after) = match sent {
                Err(_) => {
                    return Err(ProviderError::Timeout {
                        after: self.config.request_timeout,
                    });
                }
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    let wait = retry_after(response.headers(), chrono::Utc::now());
                    // A wait longer than we would ever wait: retrying early
                    // would only be refused again.
                    let too_long = wait.is_some_and(|w| w > self.config.max_backoff);
                    if !retryable || last || too_long {
                        let mut body = self.excerpt(response, cancel).await?;
                        if let Some(w) = wait.filter(|_| too_long) {
                            body = format!(
                                "{body} (it asked to retry in {} s, more than the longest wait of {} s)",
                                w.as_secs(),
                                self.config.max_backoff.as_secs_f64()
                            );
                        }
                        return Err(ProviderError::Status {
                            status: status.as_u16(),
                            body,
                        });
                    }
                    (Some(status.as_u16()), wait)
                }
                Ok(Err(error)) => {
                    if last || error.is_builder() {
                        return Err(ProviderError::Unavailable {
                            reason: self.describe(error),
                        });
                    }
                    (None, None)
                }
            };
            let delay = self.backoff(attempt, retry_after);
            tracing::warn!(
                provider = "openai",
                attempt = attempt + 1,
                http.status = status,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "model provider request failed; retrying"
            );
            cancellable(cancel, tokio::time::sleep(delay)).await?;
            attempt += 1;
        }
    }

    /// The wait before retry number `attempt + 1`: the server's
    /// `Retry-After` when given, else exponential with equal jitter; never
    /// more than `max_backoff`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.config.max_backoff;
        if let Some(wait) = retry_after {
            return wait.min(cap);
        }
        let base = self
            .config
            .initial_backoff
            .saturating_mul(2_u32.saturating_pow(attempt))
            .min(cap);
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Reads a short, secret-free excerpt of an error response's body.
    async fn excerpt(
        &self,
        mut response: Response,
        cancel: &CancellationToken,
    ) -> Result<String, ProviderError> {
        let mut body = Vec::new();
        while body.len() < 4096 {
            match self.next_chunk(&mut response, cancel).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(ProviderError::Cancelled) => return Err(ProviderError::Cancelled),
                Err(_) => break,
            }
        }
        let text = self.redact(&String::from_utf8_lossy(&body));
        let text: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(EXCERPT_CHARS)
            .collect();
        Ok(if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            text
        })
    }

    /// A transport error as text: what failed and the root cause, without
    /// the URL.
    fn describe(&self, error: reqwest::Error) -> String {
        let error = error.without_url();
        let what = if error.is_connect() {
            "could not connect"
        } else if error.is_timeout() {
            "timed out"
        } else {
            "the request failed"
        };
        let mut cause: &dyn std::error::Error = &error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        self.redact(&format!("{what}: {cause}"))
    }

    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) if !key.expose_secret().is_empty() => {
                text.replace(key.expose_secret(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }

    /// The next piece of the body, within the stall timeout.
    async fn next_chunk(
        &self,
        response: &mut Response,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        let stall = self.config.stall_timeout;
        match cancellable(cancel, tokio::time::timeout(stall, response.chunk())).await? {
            Err(_) => Err(ProviderError::StallTimeout { after: stall }),
            Ok(Err(error)) => Err(ProviderError::Unavailable {
                reason: format!("the response broke off ({})", self.describe(error)),
            }),
            Ok(Ok(chunk)) => Ok(chunk.map(|bytes| bytes.to_vec())),
        }
    }

    async fn read_stream(
        &self,
        mut response: Response,
        request: &CompletionRequest,
        sink: &DeltaSink,
        cancel: &CancellationToken,
    ) -> Result<Completion, ProviderError> {
        let mut decoder = SseDecoder::default();
        let mut state = StreamState::default();
        while !state.done {
            let events = match self.next_chunk(&mut response, cancel).await? {
                Some(bytes) => decoder.push(&bytes),
                None => {
                    let events = decoder.finish();
                    state.ended = true;
                    events
                }
            };
            if decoder.pending() > MAX_BODY_BYTES {
                return Err(protocol("an event is too large"));
            }
            for data in events {
                if let Some(delta) = state.accept(&data, |t| self.redact(t))? {
                    sink.send(&delta, cancel).await?;
                }
                if state.done {
                    break;
                }
            }
            if state.ended {
                break;
            }
        }
        if !state.done && state.finish_reason.is_none() {
            return Err(protocol("the stream ended before the completion did"));
        }
        let usage = state
            .usage
            .unwrap_or_else(|| Usage::estimate(&request.messages, &state.text));
        Ok(Completion {
            text: state.text,
            usage,
            model: state.model.unwrap_or_else(|| request.model.clone()),
            finish_reason: state.finish_reason,
        })
    }

    async fn read_json(
        &self,
        mut response: Response,
        request: &CompletionRequest,
        sink: &DeltaSink,
        cancel: &CancellationToken,
    ) -> Result<Completion, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(&mut response, cancel).await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(protocol("the response is too large"));
            }
        }
        let full: FullResponse = serde_json::from_slice(&body)
            .map_err(|_| protocol("the response is not a chat completion"))?;
        if let Some(error) = full.error {
            return Err(remote_error(&error, |t| self.redact(t)));
        }
        let choice = full
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| protocol("the response has no choices"))?;
        let text = choice.message.and_then(|m| m.content).unwrap_or_default();
        if text.len() > MAX_COMPLETION_BYTES {
            return Err(protocol("the completion is too long"));
        }
        sink.send(&text, cancel).await?;
        let usage = full
            .usage
            .map(WireUsage::into_usage)
            .unwrap_or_else(|| Usage::estimate(&request.messages, &text));
        Ok(Completion {
            text,
            usage,
            model: full.model.unwrap_or_else(|| request.model.clone()),
            finish_reason: choice.finish_reason,
        })
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.config.model
    }

    async fn complete(
        &self,
        request: &CompletionRequest,
        sink: &DeltaSink,
        cancel: &CancellationToken,
    ) -> Result<Completion, ProviderError> {
        if cancel.is_cancelled() {
            return Err(ProviderError::Cancelled);
        }
        let body = WireRequest {
            model: &request.model,
            messages: &request.messages,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        let response = self.send(&body, cancel).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if is_json {
            self.read_json(response, request, sink, cancel).await
        } else {
            self.read_stream(response, request, sink, cancel).await
        }
    }
}

async fn cancellable<F: Future>(
    cancel: &CancellationToken,
    future: F,
) -> Result<F::Output, ProviderError> {
    cancel
        .run_until_cancelled(future)
        .await
        .ok_or(ProviderError::Cancelled)
}

/// `Retry-After` as a wait from `now`: delay-seconds, or an HTTP date (the
/// IMF-fixdate form, or the obsolete RFC 850 and asctime ones); a date past
/// is no wait. `None` when absent or unreadable.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y"))
                .map(|d| d.and_utc())
        })
        .ok()?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn protocol(reason: &str) -> ProviderError {
    ProviderError::Protocol {
        reason: reason.to_owned(),
    }
}

/// An `{"error": {...}}` object from the server, as an error.
fn remote_error(error: &serde_json::Value, redact: impl Fn(&str) -> String) -> ProviderError {
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .or_else(|| error.as_str())
        .unwrap_or("no message");
    let message: String = redact(message)
        .chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect();
    ProviderError::Protocol {
        reason: format!("the provider reported an error: {message}"),
    }
}

/// What goes over the wire: the request without `offline_draft`.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl WireUsage {
    fn into_usage(self) -> Usage {
        Usage {
            prompt_tokens: u32::try_from(self.prompt_tokens).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(self.completion_tokens).unwrap_or(u32::MAX),
            estimated: false,
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<WireUsage>,
    model: Option<String>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    index: u32,
    delta: Option<StreamDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct StreamDelta {
    content: Option<String>,
}

/// A non-streamed `chat.completion`.
#[derive(Deserialize)]
struct FullResponse {
    #[serde(default)]
    choices: Vec<FullChoice>,
    usage: Option<WireUsage>,
    model: Option<String>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct FullChoice {
    message: Option<FullMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct FullMessage {
    content: Option<String>,
}

/// What a stream has delivered so far.
#[derive(Default)]
struct StreamState {
    text: String,
    usage: Option<Usage>,
    model: Option<String>,
    finish_reason: Option<String>,
    /// `[DONE]` was received.
    done: bool,
    /// The body ended.
    ended: bool,
}

impl StreamState {
    /// Takes one event's data, returning the text it adds, if any.
    fn accept(
        &mut self,
        data: &str,
        redact: impl Fn(&str) -> String,
    ) -> Result<Option<String>, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: StreamChunk =
            serde_json::from_str(data).map_err(|_| protocol("a stream event is not JSON"))?;
        if let Some(error) = chunk.error {
            return Err(remote_error(&error, redact));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into_usage());
        }
        if self.model.is_none() {
            self.model = chunk.model;
        }
        let mut added = String::new();
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(content) = choice.delta.and_then(|d| d.content) {
                added.push_str(&content);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        if self.text.len() + added.len() > MAX_COMPLETION_BYTES {
            return Err(protocol("the completion is too long"));
        }
        self.text.push_str(&added);
        Ok((!added.is_empty()).then_some(added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(key: Option<&str>) -> OpenAiProvider {
        let config = OpenAiConfig {
            api_key: key.map(|k| SecretString::from(k.to_owned())),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..OpenAiConfig::default()
        };
        OpenAiProvider::new(config).unwrap()
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_a_capped_retry_after() {
        let p = provider(None);
        for attempt in 0..8 {
            let base = Duration::from_millis(100)
                .saturating_mul(2_u32.pow(attempt))
                .min(Duration::from_secs(2));
            let delay = p.backoff(attempt, None);
            assert!(delay >= base / 2 && delay <= base, "{attempt}: {delay:?}");
        }
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(120))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_endpoint_is_under_the_base_url_and_bad_urls_are_refused() {
        let config = OpenAiConfig {
            base_url: "http://127.0.0.1:9/v1/".to_owned(),
            ..OpenAiConfig::default()
        };
        let p = OpenAiProvider::new(config).unwrap();
        assert_eq!(
            p.endpoint.as_str(),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        for bad in ["", "localhost:8080", "ftp://example.com", "mailto:x@y"] {
            let config = OpenAiConfig {
                base_url: bad.to_owned(),
                ..OpenAiConfig::default()
            };
            assert!(OpenAiProvider::new(config).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_is_redacted_and_never_debug_printed() {
        let p = provider(Some("sk-test-secret-123"));
        assert_eq!(
            p.redact("bad key sk-test-secret-123!"),
            "bad key [redacted]!"
        );
        assert!(!format!("{p:?}").contains("sk-test-secret-123"));
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        for date in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            headers.insert(RETRY_AFTER, date.parse().unwrap());
            assert_eq!(
                retry_after(&headers, now),
                Some(Duration::from_secs(30)),
                "{date}"
            );
        }
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:27:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::ZERO),
            "a date past"
        );
        for bad in ["soon", "-1", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            headers.insert(RETRY_AFTER, bad.parse().unwrap());
            assert_eq!(retry_after(&headers, now), None, "{bad}");
        }
    }

    #[test]
    fn stream_events_accumulate_text_usage_and_completion() {
        let mut state = StreamState::default();
        let id = |t: &str| t.to_owned();
        let delta = |c: &str| {
            format!(
                r#"{{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}]}}"#,
                serde_json::Value::from(c)
            )
        };
        assert_eq!(
            state.accept(&delta("Hel"), id).unwrap(),
            Some("Hel".to_owned())
        );
        assert_eq!(
            state.accept(&delta("lo"), id).unwrap(),
            Some("lo".to_owned())
        );
        let last = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#;
        assert_eq!(state.accept(last, id).unwrap(), None);
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        assert_eq!(state.accept(usage, id).unwrap(), None);
        assert_eq!(state.accept("[DONE]", id).unwrap(), None);
        assert!(state.done);
        assert_eq!(state.text, "Hello");
        assert_eq!(state.finish_reason.as_deref(), Some("stop"));
        assert_eq!(state.model.as_deref(), Some("m"));
        assert_eq!(
            state.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3,
                estimated: false
            })
        );
        assert!(matches!(
            state.accept("{not json", id),
            Err(ProviderError::Protocol { .. })
        ));
        assert!(matches!(
            state.accept(r#"{"error":{"message":"overloaded"}}"#, id),
            Err(ProviderError::Protocol { reason }) if reason.contains("overloaded")
        ));
    }
}
