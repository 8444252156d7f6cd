//! The one place domain errors become GraphQL errors. Each variant of
//! [`ErrorCode`] is a stable `extensions.code` of the public contract.

use async_graphql::{Error, ErrorExtensions};
use strata_domain::DomainError;

/// The stable error codes of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid credential (HTTP 401 when no data can be returned).
    Unauthenticated,
    /// The credential is valid but its role does not allow this.
    Forbidden,
    /// The object does not exist or is not visible (the same thing).
    NotFound,
    /// Bad input; `extensions.field` names the field.
    BadUserInput,
    /// The operation exceeds a depth, complexity or size limit.
    QueryTooComplex,
    /// A rate limit or quota was exceeded.
    RateLimited,
    /// The organization requires multi-factor authentication and the token
    /// proves none (HTTP 403 when no data can be returned).
    MfaRequired,
    /// A data export's file is not there to download: still being
    /// written (HTTP 409, with `Retry-After`), failed (409) or expired
    /// (410). `EXPORT_NOT_READY`, an addition to the contract's codes.
    ExportNotReady,
    /// A dependency (the database) is unreachable; retrying later may
    /// succeed. `UNAVAILABLE`, an addition to the contract's codes, so a
    /// client can tell an outage worth retrying from a fault of ours.
    Unavailable,
    /// Anything else; the message tells nothing about internals.
    Internal,
}

impl ErrorCode {
    /// The `extensions.code` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::MfaRequired => "MFA_REQUIRED",
            ErrorCode::ExportNotReady => "EXPORT_NOT_READY",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// An error with this code and message.
    pub fn error(self, message: impl Into<String>) -> Error {
        Error::new(message.into()).extend_with(|_, e| e.set("code", self.as_str()))
    }
}

/// Converts a domain error, logging the cause of internal ones once, here.
pub fn domain_error(err: DomainError) -> Error {
    match err {
        DomainError::Validation(v) => Error::new(v.to_string()).extend_with(|_, e| {
            e.set("code", ErrorCode::BadUserInput.as_str());
            e.set("field", v.field);
        }),
        DomainError::Conflict { field, message } => Error::new(format!("{field}: {message}"))
            .extend_with(|_, e| {
                e.set("code", ErrorCode::BadUserInput.as_str());
                e.set("field", field);
            }),
        DomainError::NotFound => ErrorCode::NotFound.error("not found"),
        DomainError::Forbidden(why) => ErrorCode::Forbidden.error(why),
        DomainError::TimedOut => ErrorCode::QueryTooComplex.error(
            "the operation took longer than the database allows a request: ask for less (smaller pages, fewer nested lists)",
        ),
        DomainError::Unavailable(cause) => {
            tracing::warn!(error = %error_chain(cause.as_ref()), "dependency unavailable");
            ErrorCode::Unavailable.error("service temporarily unavailable, retry later")
        }
        DomainError::Internal(cause) => {
            tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
            ErrorCode::Internal.error("internal error")
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
