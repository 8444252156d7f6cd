//! AI agents and the LLM providers they run on.
//!
//! An agent ([`AgentKind`]: business strategy, brand voice, persona builder,
//! campaign planner) turns one run's [`AgentContext`] into chat messages,
//! asks an [`LlmProvider`] for a completion, streaming its text to a
//! [`DeltaSink`] as it arrives, and validates the answer into a typed,
//! versioned [`AgentOutput`]. [`run_agent`] does all of it. Providers are an
//! OpenAI-compatible HTTP client ([`OpenAiProvider`], with retries, timeouts
//! and cancellation) and the [`OfflineProvider`], the default when no model
//! is configured, which answers with a deterministic draft built from the
//! context ([`offline_draft`]).
//!
//! What this crate must never do:
//!
//! - Touch the database. It knows nothing of storage; the caller reads the
//!   records of one tenant (and, for agencies, one client) and hands them
//!   over as plain data, and stores the result ([`AgentOutput::to_value`]).
//! - Use any tenant data but the given context: a prompt is built from its
//!   [`AgentContext`] alone, and nothing is cached between runs.
//! - Log or put into an error a prompt, a completion or an API key. Logs
//!   carry constant messages with counts, durations and codes; the key is a
//!   [`secrecy::SecretString`], sent only in the `Authorization` header and
//!   redacted from any text taken from a server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

mod context;
mod draft;
mod error;
mod input;
mod kind;
mod output;
mod prompt;
mod provider;

pub use context::{AgentContext, CampaignInfo, ClientInfo, InputError, PersonaInfo};
pub use draft::offline_draft;
pub use error::AgentError;
pub use input::{
    AgentInput, BrandVoiceInput, BusinessStrategyInput, CampaignPlannerInput, PersonaBuilderInput,
};
pub use kind::{AgentKind, UnknownAgentKind};
pub use output::{
    AgentOutput, BrandVoice, BusinessStrategy, CampaignPlan, OUTPUT_VERSION, OutputError,
    PersonaProfile, PersonaSet, Phase, Swot,
};
pub use prompt::{
    CONTEXT_END, CONTEXT_START, INSTRUCTIONS_END, INSTRUCTIONS_START, RUN_TOKEN_RESERVATION,
    build_messages,
};
pub use provider::{
    ChatMessage, ChatRole, Completion, CompletionRequest, DeltaSink, LlmProvider, OfflineProvider,
    OpenAiConfig, OpenAiProvider, ProviderError, Usage, build_provider,
};

/// Bounds on inputs and outputs.
pub mod limits {
    pub use crate::context::limits as input;
    pub use crate::input::limits as typed_input;
    pub use crate::output::limits as output;
}

/// A provider shared between runs.
pub type SharedProvider = Arc<dyn LlmProvider>;

/// A successful run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResult {
    /// The agent that ran.
    pub kind: AgentKind,
    /// The validated output.
    pub output: AgentOutput,
    /// The same output in its stored form (`{"version": 1, "kind": ...}`).
    pub value: serde_json::Value,
    /// The output's version, [`OUTPUT_VERSION`].
    pub version: u32,
    /// The model that answered.
    pub model: String,
    /// Tokens used.
    pub usage: Usage,
    /// From the start of the run to the validated output.
    pub latency: Duration,
}

/// Runs agent `kind` on `context` with `provider`, streaming the answer's
/// text to `sink`, and returns its validated output.
///
/// `model` overrides the provider's default model. Cancelling `cancel`
/// stops the run promptly with [`AgentError::Cancelled`].
pub async fn run_agent(
    provider: &dyn LlmProvider,
    kind: AgentKind,
    context: &AgentContext,
    model: Option<&str>,
    sink: &DeltaSink,
    cancel: &CancellationToken,
) -> Result<AgentResult, AgentError> {
    let started = Instant::now();
    let result = run(provider, kind, context, model, sink, cancel, started).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(done) => tracing::info!(
            agent.kind = kind.as_str(),
            provider = provider.name(),
            usage.prompt_tokens = done.usage.prompt_tokens,
            usage.completion_tokens = done.usage.completion_tokens,
            latency_ms,
            "agent run succeeded"
        ),
        Err(error) => tracing::warn!(
            agent.kind = kind.as_str(),
            provider = provider.name(),
            error.code = error.code(),
            latency_ms,
            "agent run failed"
        ),
    }
    result
}

async fn run(
    provider: &dyn LlmProvider,
    kind: AgentKind,
    context: &AgentContext,
    model: Option<&str>,
    sink: &DeltaSink,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<AgentResult, AgentError> {
    if cancel.is_cancelled() {
        return Err(AgentError::Cancelled);
    }
    context.validate()?;
    let input = context.input_for(kind)?;
    let request = CompletionRequest {
        model: model.unwrap_or(provider.default_model()).to_owned(),
        messages: build_messages(kind, context),
        temperature: Some(prompt::TEMPERATURE),
        max_tokens: Some(prompt::max_tokens(kind)),
        offline_draft: Some(offline_draft(kind, context).to_value()),
    };
    // One span per model call, with the GenAI semantic conventions'
    // attributes: the model and the token counts, never the messages.
    let span = tracing::trace_span!(
        "gen_ai.chat",
        otel.name = %format_args!("chat {}", request.model),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.system = provider.name(),
        gen_ai.request.model = %request.model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
    );
    let completion = provider
        .complete(&request, sink, cancel)
        .instrument(span.clone())
        .await?;
    span.record("gen_ai.response.model", completion.model.as_str());
    span.record("gen_ai.usage.input_tokens", completion.usage.prompt_tokens);
    span.record(
        "gen_ai.usage.output_tokens",
        completion.usage.completion_tokens,
    );
    // The provider used (and billed) the answer's tokens even if it is
    // refused: the error carries them.
    let output = AgentOutput::parse(kind, &completion.text)
        .and_then(|output| input.fit(output))
        .map_err(|e| AgentError::refused_output(e, completion.usage))?;
    let value = output.to_value();
    Ok(AgentResult {
        kind,
        output,
        value,
        version: OUTPUT_VERSION,
        model: completion.model,
        usage: completion.usage,
        latency: started.elapsed(),
    })
}
