//! Role guards: what a role may do, checked by the GraphQL layer before a
//! resolver runs. The repositories check the same again, and the database's
//! policies (`app.can_write()`, `app.can_administer()`) a third time; a
//! guard refuses first, with the message the repository would give.

use async_graphql::{Context, Guard, Result};

use crate::error::ErrorCode;
use crate::state::RequestState;

/// What a field requires of the caller's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Requirement {
    /// May change content: not a VIEWER, not a read-only API key.
    Write,
    /// May administer the organization: an OWNER or ADMIN user (an API
    /// key never does).
    Administer,
}

/// Refuses a field with `FORBIDDEN` unless the caller's context meets a
/// requirement. Without an active organization it refuses with the same
/// error as every tenant field.
#[derive(Clone, Copy, Debug)]
pub struct RoleGuard {
    requirement: Requirement,
    refusal: &'static str,
}

impl RoleGuard {
    /// Content writes; `refusal` is the message of the error.
    pub const fn write(refusal: &'static str) -> Self {
        Self {
            requirement: Requirement::Write,
            refusal,
        }
    }

    /// Members, clients, settings, API keys and the audit log; `refusal`
    /// is the message of the error.
    pub const fn administer(refusal: &'static str) -> Self {
        Self {
            requirement: Requirement::Administer,
            refusal,
        }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let tenant = ctx.data::<RequestState>()?.tenant()?;
        let allowed = match self.requirement {
            Requirement::Write => tenant.can_write(),
            Requirement::Administer => tenant.can_administer(),
        };
        if allowed {
            Ok(())
        } else {
            Err(ErrorCode::Forbidden.error(self.refusal))
        }
    }
}
