//! Building a [`TenantContext`] from what the database says about a verified
//! user: the token names who and which organization; memberships decide the
//! role, the organization type and the client scope.

use strata_domain::context::Resolution;
use strata_domain::model::{Membership, User};
use strata_domain::{Actor, ClientScope, DomainError, OrgId, TenantContext, UserId};

use crate::auth;
use crate::db::Db;
use crate::tx::AuthTx;

/// A verified user, as the database knows them.
#[derive(Clone, Debug)]
pub struct ResolvedUser {
    /// The user (provisioned on first use).
    pub user: User,
    /// All their memberships.
    pub memberships: Vec<Membership>,
    /// The context of the active organization, when there is one: the
    /// requested one, or the only one.
    pub context: Option<TenantContext>,
}

/// Why a user could not act in the organization they asked for.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The requested organization does not exist or the user is not (or no
    /// longer) a member; the two are indistinguishable on purpose.
    #[error("not a member of the requested organization")]
    NotAMember,
    /// The database failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// The context for one membership.
pub fn context_for(m: &Membership, user: UserId, request_id: &str) -> TenantContext {
    let clients = if m.role.sees_all_clients() {
        ClientScope::All
    } else {
        ClientScope::Only(m.client_ids.clone())
    };
    TenantContext::resolved(Resolution {
        org_id: m.org_id,
        org_type: m.org_type,
        actor: Actor::User(user),
        role: m.role,
        clients,
        read_only: false,
        request_id: request_id.to_owned(),
    })
}

/// Provisions the user if new, reads their memberships and picks the active
/// organization, in one `app_auth` transaction.
pub async fn resolve_user(
    db: &Db,
    user_id: UserId,
    email: Option<&str>,
    requested: Option<OrgId>,
    request_id: &str,
) -> Result<ResolvedUser, ResolveError> {
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    let user = auth::provision_user(&tx, user_id, email).await?;
    let memberships = auth::memberships(&tx, user_id).await?;
    tx.commit().await?;
    let active = match requested {
        Some(org) => Some(
            memberships
                .iter()
                .find(|m| m.org_id == org)
                .ok_or(ResolveError::NotAMember)?,
        ),
        None if memberships.len() == 1 => memberships.first(),
        None => None,
    };
    let context = active.map(|m| context_for(m, user_id, request_id));
    Ok(ResolvedUser {
        user,
        memberships,
        context,
    })
}

/// The context of `user` in `org` (or their only organization).
pub async fn resolve_for(
    db: &Db,
    user: UserId,
    org: Option<OrgId>,
    request_id: &str,
) -> Result<TenantContext, DomainError> {
    match resolve_user(db, user, None, org, request_id).await {
        Ok(ResolvedUser {
            context: Some(ctx), ..
        }) => Ok(ctx),
        Ok(_) | Err(ResolveError::NotAMember) => Err(DomainError::NotFound),
        Err(ResolveError::Domain(e)) => Err(e),
    }
}
