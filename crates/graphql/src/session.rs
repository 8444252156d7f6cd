//! What a request knows of its caller, and its transaction: the pool, the
//! user and memberships, the verified tenant context, the request id, the
//! tenant transaction begun on first use, and what must happen once it
//! commits. [`crate::state::RequestState`] holds a session with the
//! request's loaders; the loaders hold the session only weakly and read
//! through its transaction. It is a module of its own so that the loaders
//! need not import the state that holds them.

use std::sync::Arc;

use strata_domain::DomainError;
use strata_domain::model::{Membership, User};
use strata_persistence::context::VerifiedContext;
use strata_persistence::{Db, TenantTx};
use tokio::sync::OnceCell;

use crate::error::{ErrorCode, domain_error};

/// Something a request did that matters once its transaction commits.
#[derive(Clone, Debug)]
pub enum Committed {
    /// A member's role, assignments or membership changed.
    MembershipChanged(strata_domain::UserId),
    /// An agent run was queued: start it.
    RunQueued(Box<strata_domain::model::AgentRun>),
    /// An agent run was cancelled: stop it.
    RunCancelled(strata_domain::OutputId),
    /// An API key was revoked: open connections that use it re-check at
    /// once.
    ApiKeyRevoked,
    /// A user's sessions were revoked: forget what is remembered of them,
    /// here and on every replica, and their open connections re-check.
    SessionsRevoked(strata_domain::UserId),
    /// An organization's sign-in policy changed (`requireMfa`): forget
    /// what is remembered of its members, here and on every replica, and
    /// open connections re-check.
    PolicyChanged(strata_domain::OrgId),
    /// A data export was started: write it.
    ExportStarted(Box<strata_persistence::export::DataExport>),
}

impl Committed {
    /// What an erasure asks of the rest of the server after the commit:
    /// its runs stop, its members' remembered memberships go, and open
    /// connections of its API keys re-check.
    pub(crate) fn of_erasure(erased: strata_persistence::repo::Erasure) -> Vec<Committed> {
        let mut out: Vec<Committed> = erased
            .runs
            .into_iter()
            .map(Committed::RunCancelled)
            .collect();
        out.extend(erased.members.into_iter().map(Committed::MembershipChanged));
        if erased.api_keys > 0 {
            out.push(Committed::ApiKeyRevoked);
        }
        out
    }
}

/// What a signed-in user's token said besides who they are: the e-mail
/// invitations are matched against, the name members see, and whether it
/// proves a second factor.
#[derive(Clone, Debug, Default)]
pub struct Credential {
    /// E-mail, if the token carried one.
    pub email: Option<String>,
    /// Whether the identity provider verified it.
    pub email_verified: bool,
    /// Display name, if the token carried one.
    pub name: Option<String>,
    /// Whether the token proves a second factor.
    pub mfa: bool,
}

impl Credential {
    /// The identity the persistence layer matches invitations with.
    pub fn identity(&self) -> strata_persistence::auth::Identity<'_> {
        strata_persistence::auth::Identity {
            email: self.email.as_deref(),
            email_verified: self.email_verified,
            name: self.name.as_deref(),
        }
    }
}

/// One request's caller and transaction.
pub(crate) struct Session {
    /// What the request's mutations asked to happen after the commit.
    pub(crate) committed: std::sync::Mutex<Vec<Committed>>,
    /// What changes committed in transactions of their own (a user's own
    /// memberships and sessions) ask to happen, whatever becomes of the
    /// request's transaction.
    pub(crate) durable: std::sync::Mutex<Vec<Committed>>,
    /// The pool.
    pub(crate) db: Db,
    /// The signed-in user, if a user (not a key) is calling.
    pub(crate) user: Option<User>,
    /// The user's memberships.
    pub(crate) memberships: Vec<Membership>,
    /// What the user's token said besides who they are.
    pub(crate) credential: Credential,
    /// The active organization, once read (a members page names it for
    /// each member).
    pub(crate) organization: OnceCell<strata_domain::model::Organization>,
    /// The tenant context, when the credential resolved to one.
    pub(crate) context: Option<VerifiedContext>,
    /// The request id.
    pub(crate) request_id: String,
    /// The transaction, once begun, and whether it may write.
    pub(crate) tx: OnceCell<(Arc<TenantTx>, bool)>,
}

impl Session {
    /// The transaction, begun on first use. The first use decides its
    /// mode: a query only reads (READ ONLY), a mutation writes.
    pub(crate) async fn tx(&self, write: bool) -> async_graphql::Result<&TenantTx> {
        let ctx = self
            .context
            .as_ref()
            .ok_or_else(|| ErrorCode::Forbidden.error("no active organization"))?;
        let (tx, writable) = self
            .tx
            .get_or_try_init(|| async {
                let tx = if write {
                    TenantTx::begin(&self.db, ctx).await?
                } else {
                    TenantTx::begin_read_only(&self.db, ctx).await?
                };
                Ok::<_, DomainError>((Arc::new(tx), write))
            })
            .await
            .map_err(domain_error)?;
        if write && !writable {
            return Err(ErrorCode::Internal.error("internal error"));
        }
        Ok(tx)
    }
}
