//! Domain errors. Library crates use `thiserror` enums; `anyhow` is for the
//! binary and tests only. The GraphQL layer maps these to stable
//! `extensions.code` values.

use thiserror::Error;

/// A field of user input that failed to parse.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The input field, as the API names it (`slug`, `name`, ...).
    pub field: &'static str,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl ValidationError {
    /// An error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why an operation was refused or failed, independent of transport.
#[derive(Debug, Error)]
pub enum DomainError {
    /// Bad user input, naming the field.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The object does not exist or is not visible to this context; the two
    /// are deliberately indistinguishable.
    #[error("not found")]
    NotFound,
    /// The context is known but its role does not allow the operation.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A uniqueness rule was broken (e.g. a slug already taken).
    #[error("{field}: {message}")]
    Conflict {
        /// The input field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A statement ran longer than the database allows a request.
    #[error("the operation took too long")]
    TimedOut,
    /// The database (or another dependency) is unavailable; retrying may help.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: a bug or an unexpected state. Never shown to clients.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}
