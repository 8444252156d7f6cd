//! The guard of every operation a caller may be refused: it reads the
//! operation's row of [`strata_domain::Action`] (the permission it needs and
//! the message it is refused with) before the resolver runs. The
//! repositories check the same row again, and the database's policies
//! (`app.can_write()`, `app.can_administer()`) a third time; the guard
//! refuses first, with the message the repository would give.

use async_graphql::{Context, Guard, Result};
use strata_domain::Action;

use crate::error::ErrorCode;
use crate::state::RequestState;

/// Refuses a field with `FORBIDDEN` unless the caller's context may perform
/// the operation. Without an active organization it refuses with the same
/// error as every tenant field.
#[derive(Clone, Copy, Debug)]
pub struct ActionGuard(pub Action);

impl Guard for ActionGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let tenant = ctx.data::<RequestState>()?.tenant()?;
        if self.0.allows(tenant) {
            Ok(())
        } else {
            Err(ErrorCode::Forbidden.error(self.0.refusal()))
        }
    }
}
