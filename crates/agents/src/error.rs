//! The error of an agent run. Every variant has a stable [`AgentError::code`]
//! and a message fit to store with the run and show to its user: it never
//! holds an API key, a prompt or a completion.
//!
//! Like every library crate here, this one has its own `thiserror` enums
//! (this one, [`ProviderError`], [`OutputError`], [`InputError`]) and no
//! `anyhow`.

use std::time::Duration;

use crate::context::InputError;
use crate::output::OutputError;
use crate::provider::{ProviderError, Usage};

/// Why a run produced no output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The context is out of bounds. Code `INVALID_INPUT`.
    #[error(transparent)]
    InvalidInput(#[from] InputError),
    /// The provider cannot be reached or used. Code `PROVIDER_UNAVAILABLE`.
    #[error("the model provider is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The provider answered with an error status. Code `PROVIDER_HTTP_STATUS`.
    #[error("the model provider answered HTTP {status}: {body}")]
    HttpStatus {
        /// The HTTP status.
        status: u16,
        /// A short, redacted excerpt of the body.
        body: String,
    },
    /// The provider did not answer in time. Code `PROVIDER_TIMEOUT`.
    #[error("the model provider did not answer within {:.1} s", after.as_secs_f64())]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The provider's stream stopped mid-way. Code `PROVIDER_STALLED`.
    #[error("the model provider's stream stalled for {:.1} s", after.as_secs_f64())]
    StallTimeout {
        /// The stall timeout.
        after: Duration,
    },
    /// The run was cancelled. Code `CANCELLED`.
    #[error("the run was cancelled")]
    Cancelled,
    /// The provider's response could not be understood. Code
    /// `PROVIDER_PROTOCOL`.
    #[error("the model provider's response is unreadable: {reason}")]
    Protocol {
        /// Why.
        reason: String,
    },
    /// The model's answer is not a JSON object. Code `MALFORMED_OUTPUT`.
    #[error("the model's answer is not a JSON object: {reason}")]
    MalformedOutput {
        /// Why.
        reason: String,
        /// The tokens the provider used for the answer (and billed).
        usage: Usage,
    },
    /// The model's answer is not of the documented shape. Code
    /// `INVALID_OUTPUT`.
    #[error("the model's answer is invalid: `{field}` {problem}")]
    InvalidOutput {
        /// The offending field, as a path.
        field: String,
        /// What is wrong with it.
        problem: String,
        /// The tokens the provider used for the answer (and billed).
        usage: Usage,
    },
}

impl AgentError {
    /// A stable, machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            AgentError::InvalidInput(_) => "INVALID_INPUT",
            AgentError::Unavailable { .. } => "PROVIDER_UNAVAILABLE",
            AgentError::HttpStatus { .. } => "PROVIDER_HTTP_STATUS",
            AgentError::Timeout { .. } => "PROVIDER_TIMEOUT",
            AgentError::StallTimeout { .. } => "PROVIDER_STALLED",
            AgentError::Cancelled => "CANCELLED",
            AgentError::Protocol { .. } => "PROVIDER_PROTOCOL",
            AgentError::MalformedOutput { .. } => "MALFORMED_OUTPUT",
            AgentError::InvalidOutput { .. } => "INVALID_OUTPUT",
        }
    }

    /// The code tenants see for this failure: provider trouble is
    /// `PROVIDER_UNAVAILABLE` (worth retrying) or `PROVIDER_REFUSED` (the
    /// provider turned the request down); the rest keep [`AgentError::code`].
    pub const fn public_code(&self) -> &'static str {
        match self {
            AgentError::HttpStatus { status, .. } if *status == 429 || *status >= 500 => {
                "PROVIDER_UNAVAILABLE"
            }
            AgentError::HttpStatus { .. } => "PROVIDER_REFUSED",
            AgentError::Unavailable { .. }
            | AgentError::Timeout { .. }
            | AgentError::StallTimeout { .. }
            | AgentError::Protocol { .. } => "PROVIDER_UNAVAILABLE",
            other => other.code(),
        }
    }

    /// The reason stored with the run and shown to its tenant: the code and
    /// a sentence of ours. Nothing the provider wrote (its error bodies can
    /// name the operator's account or usage) is in it; that goes to the
    /// operator's log only.
    pub fn public_reason(&self) -> String {
        let code = self.public_code();
        match self {
            AgentError::HttpStatus { status, .. } if *status == 429 || *status >= 500 => format!(
                "{code}: the model provider is unavailable (HTTP {status}); try again later"
            ),
            AgentError::HttpStatus { status, .. } => {
                format!("{code}: the model provider refused the request (HTTP {status})")
            }
            AgentError::Protocol { .. } => {
                format!("{code}: the model provider's response was unreadable; try again later")
            }
            // The rest are our own words: how it failed to connect, how
            // long it waited, what of the answer was refused.
            other => format!("{code}: {other}"),
        }
    }

    /// The tokens a provider used although the run failed: those of an
    /// answer that came but was refused. `None` when no answer came.
    pub const fn billed_usage(&self) -> Option<Usage> {
        match self {
            AgentError::MalformedOutput { usage, .. } | AgentError::InvalidOutput { usage, .. } => {
                Some(*usage)
            }
            _ => None,
        }
    }

    /// The error for an answer refused by validation, which used `usage`.
    pub fn refused_output(error: OutputError, usage: Usage) -> Self {
        match error {
            OutputError::Malformed { reason } => AgentError::MalformedOutput { reason, usage },
            OutputError::Invalid { field, problem } => AgentError::InvalidOutput {
                field,
                problem,
                usage,
            },
        }
    }

    /// Whether running again later may succeed: provider trouble and
    /// answers the model may get right next time, not bad input or a
    /// cancellation.
    pub const fn is_transient(&self) -> bool {
        match self {
            AgentError::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            AgentError::Unavailable { .. }
            | AgentError::Timeout { .. }
            | AgentError::StallTimeout { .. }
            | AgentError::Protocol { .. }
            | AgentError::MalformedOutput { .. }
            | AgentError::InvalidOutput { .. } => true,
            AgentError::InvalidInput(_) | AgentError::Cancelled => false,
        }
    }
}

impl From<ProviderError> for AgentError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Unavailable { reason } => AgentError::Unavailable { reason },
            ProviderError::Status { status, body } => AgentError::HttpStatus { status, body },
            ProviderError::Timeout { after } => AgentError::Timeout { after },
            ProviderError::StallTimeout { after } => AgentError::StallTimeout { after },
            ProviderError::Cancelled => AgentError::Cancelled,
            ProviderError::Protocol { reason } => AgentError::Protocol { reason },
        }
    }
}
