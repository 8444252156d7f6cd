//! Building a [`VerifiedContext`] from what the database says about a
//! verified credential: the token names who and which organization;
//! memberships decide the role, the organization type and the client scope
//! (an API key's row decides them for a key).
//!
//! A [`VerifiedContext`] is the only thing a [`TenantTx`](crate::TenantTx)
//! begins from, and only this crate can make one: from the database's
//! answer about a credential here, or for an organization that
//! [`organizations::create`](crate::repo::organizations::create) is about
//! to create under a fresh id. A bare [`TenantContext`], which any crate
//! can build, opens no transaction. What a `VerifiedContext` proves is that
//! the role, organization type and client scope come from the database;
//! the user id they are read for is the caller's to vouch for
//! ([`resolve_for`] takes one as given: the server passes only ids of
//! verified credentials, and tests and the demo pass the users they seed).

use std::ops::Deref;

use strata_domain::context::Resolution;
use strata_domain::model::{Membership, User};
use strata_domain::{Actor, ClientScope, DomainError, OrgId, OrgType, Role, TenantContext, UserId};

use crate::auth::{self, Identity};
use crate::db::Db;
use crate::repo::api_keys;
use crate::tx::AuthTx;

/// A [`TenantContext`] that this crate built from what the database said
/// (a membership or an API key row), or for a brand-new organization. It
/// has a private field and no public constructor, so holding one proves the
/// context was resolved here; it reads as the [`TenantContext`] it wraps.
///
/// ```compile_fail
/// # fn forge(ctx: strata_domain::TenantContext) {
/// let _ = strata_persistence::context::VerifiedContext { ctx };
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct VerifiedContext {
    ctx: TenantContext,
    /// An API key's own rate, in requests a minute, when it has one.
    key_rate_per_minute: Option<u32>,
}

impl VerifiedContext {
    /// Wraps a context this crate resolved (never one handed in from
    /// outside).
    fn new(ctx: TenantContext) -> Self {
        Self {
            ctx,
            key_rate_per_minute: None,
        }
    }

    /// The calling API key's own rate, in requests a minute, when it has
    /// one (`rateLimitPerMinute`); `None` for users and other keys.
    pub fn key_rate_per_minute(&self) -> Option<u32> {
        self.key_rate_per_minute
    }

    /// The context of `user` in an organization that does not exist yet,
    /// under `org_id`: they are its owner. Only the creation of an
    /// organization uses it, with a freshly generated id (or, for the demo
    /// data, an id derived from the slug after checking the user is not yet
    /// a member), so it names no existing data.
    pub(crate) fn for_new_organization(
        user: UserId,
        org_id: OrgId,
        org_type: OrgType,
        request_id: &str,
    ) -> Self {
        Self::new(TenantContext::for_new_organization(
            user,
            org_id,
            org_type,
            request_id.to_owned(),
        ))
    }

    /// The context of the retention sweep in `org`: the server itself acts
    /// (the retention sweep).
    pub(crate) fn for_retention(org: OrgId, org_type: OrgType) -> Self {
        Self::new(TenantContext::for_system(
            org,
            org_type,
            "retention-sweep".to_owned(),
        ))
    }

    /// The context of the operator exporting `org` from the command line
    /// (`strata export`), once the organization was read as it.
    pub(crate) fn for_operator(org: OrgId, org_type: OrgType) -> Self {
        Self::new(TenantContext::for_operator(
            org,
            org_type,
            "operator-export".to_owned(),
        ))
    }

    /// The context it wraps.
    pub fn context(&self) -> &TenantContext {
        &self.ctx
    }
}

impl Deref for VerifiedContext {
    type Target = TenantContext;

    fn deref(&self) -> &TenantContext {
        &self.ctx
    }
}

/// A user's record and memberships as the database returned them (see
/// [`load_user`]). Its fields are private, so memberships cannot be made up
/// and passed to [`select`]; it may be kept and reused for later requests.
#[derive(Clone, Debug)]
pub struct LoadedUser {
    user: User,
    memberships: Vec<Membership>,
}

impl LoadedUser {
    /// The user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// All their memberships.
    pub fn memberships(&self) -> &[Membership] {
        &self.memberships
    }
}

/// A verified user, as the database knows them.
#[derive(Clone, Debug)]
pub struct ResolvedUser {
    /// The user (provisioned on first use).
    pub user: User,
    /// Their memberships that this credential may use (those whose
    /// sessions an owner or admin revoked after it was issued are left
    /// out).
    pub memberships: Vec<Membership>,
    /// The context of the active organization, when there is one: the
    /// requested one, or the only one.
    pub context: Option<VerifiedContext>,
    /// Whether the credential proved a second factor.
    pub mfa: bool,
}

/// What the presented token says about the session it belongs to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Session {
    /// When it was issued (`iat`, seconds since the epoch), if it says.
    pub issued_at: Option<i64>,
    /// Whether it proves a second factor (its `amr` names an accepted
    /// method).
    pub mfa: bool,
}

impl Session {
    /// Whether a revocation at `after` refuses this token: one issued at or
    /// before it (or one that does not say when it was issued) is refused.
    fn revoked_by(&self, after: Option<chrono::DateTime<chrono::Utc>>) -> bool {
        match (after, self.issued_at) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(after), Some(iat)) => iat <= after.timestamp(),
        }
    }
}

/// Why a user could not act in the organization they asked for.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The requested organization does not exist or the user is not (or no
    /// longer) a member; the two are indistinguishable on purpose.
    #[error("not a member of the requested organization")]
    NotAMember,
    /// The organization requires a second factor and the token proves
    /// none.
    #[error("the organization requires multi-factor authentication")]
    MfaRequired,
    /// The user signed out everywhere after this token was issued.
    #[error("the session was revoked")]
    SessionRevoked,
    /// The database failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// The context for one membership (read from the database).
fn context_for(m: &Membership, user: UserId, request_id: &str) -> VerifiedContext {
    let limited =
        !m.role.sees_all_clients() || (m.role.may_be_limited() && !m.client_ids.is_empty());
    let clients = if limited {
        ClientScope::Only(m.client_ids.clone())
    } else {
        ClientScope::All
    };
    VerifiedContext::new(TenantContext::resolved(Resolution {
        org_id: m.org_id,
        org_type: m.org_type,
        actor: Actor::User(user),
        role: m.role,
        clients,
        read_only: false,
        request_id: request_id.to_owned(),
    }))
}

/// Provisions the user if new, reads their memberships and picks the active
/// organization, in one `app_auth` transaction.
pub async fn resolve_user(
    db: &Db,
    user_id: UserId,
    identity: &Identity<'_>,
    requested: Option<OrgId>,
    session: Session,
    request_id: &str,
) -> Result<ResolvedUser, ResolveError> {
    let loaded = load_user(db, user_id, identity, request_id).await?;
    select(&loaded, requested, session, request_id)
}

/// Provisions the user if new, accepts the invitations addressed to their
/// verified e-mail, and reads their memberships with their organizations,
/// in one `app_auth` transaction: the part of [`resolve_user`] that
/// touches the database.
pub async fn load_user(
    db: &Db,
    user_id: UserId,
    identity: &Identity<'_>,
    request_id: &str,
) -> Result<LoadedUser, DomainError> {
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    let user = auth::provision_user(&tx, user_id, identity.email).await?;
    auth::accept_invitations(&tx, user_id, identity, None, request_id).await?;
    let mut memberships = auth::memberships(&tx, user_id).await?;
    auth::complete_memberships(&tx, user_id, identity, &mut memberships).await?;
    tx.commit().await?;
    Ok(LoadedUser { user, memberships })
}

/// Accepts one invitation addressed to the user's verified e-mail
/// (`acceptInvitation`): `NOT_FOUND` unless it is pending and theirs.
/// Returns the organization joined.
pub async fn accept_invitation(
    db: &Db,
    user_id: UserId,
    identity: &Identity<'_>,
    invitation: strata_domain::InvitationId,
    request_id: &str,
) -> Result<OrgId, DomainError> {
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    auth::provision_user(&tx, user_id, identity.email).await?;
    let joined =
        auth::accept_invitations(&tx, user_id, identity, Some(invitation), request_id).await?;
    let org = match joined.first() {
        Some(org) => *org,
        // Already accepted by this user (this request's own sign-in may
        // have done it): the same answer.
        None => auth::accepted_by(&tx, invitation, user_id)
            .await?
            .ok_or(DomainError::NotFound)?,
    };
    tx.commit().await?;
    Ok(org)
}

/// Refuses every token of the user issued until now, everywhere
/// (`revokeSessions` naming themself); the audit row goes to `org`, the
/// organization they act in, when there is one.
pub async fn revoke_own_sessions(
    db: &Db,
    user_id: UserId,
    org: Option<OrgId>,
    request_id: &str,
) -> Result<(), DomainError> {
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    auth::revoke_own_sessions(&tx, user_id, org, request_id).await?;
    tx.commit().await
}

/// Deletes the user's account (`deleteAccount`): every membership ends
/// (each audited in its organization under the user's id, which stays as a
/// pseudonym in the audit log), and their e-mail goes from their own row,
/// their name with the memberships that held it; every token issued until
/// now is refused. The last owner of an organization must first make
/// another member an owner: that is checked for every organization before
/// anything changes. Returns the organizations left.
pub async fn delete_account(
    db: &Db,
    user_id: UserId,
    request_id: &str,
) -> Result<Vec<OrgId>, DomainError> {
    use strata_domain::{Action, ValidationError};
    let loaded = load_user(db, user_id, &Identity::default(), request_id).await?;
    let owned: Vec<&Membership> = loaded
        .memberships
        .iter()
        .filter(|m| m.role == Role::Owner)
        .collect();
    for m in &owned {
        let ctx = context_for(m, user_id, request_id);
        let tx = crate::TenantTx::begin(db, &ctx).await?;
        let shared = crate::repo::members::has_another_owner(&tx).await?;
        tx.commit().await?;
        if !shared {
            let slug = m
                .organization
                .as_ref()
                .map_or_else(|| m.org_id.to_string(), |o| o.slug.clone());
            return Err(ValidationError::new(
                "account",
                format!("you are the last owner of {slug}: make another member an owner, or delete the organization, first"),
            )
            .into());
        }
    }
    for m in &owned {
        let ctx = context_for(m, user_id, request_id);
        let tx = crate::TenantTx::begin(db, &ctx).await?;
        crate::repo::members::leave_owning(&tx, Action::DeleteAccount).await?;
        tx.commit().await?;
    }
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    for m in loaded.memberships.iter().filter(|m| m.role != Role::Owner) {
        auth::leave_as(&tx, user_id, m.org_id, Action::DeleteAccount, request_id).await?;
    }
    auth::forget_user(&tx, user_id).await?;
    tx.commit().await?;
    Ok(loaded.memberships.iter().map(|m| m.org_id).collect())
}

/// Ends the user's membership of `org`, for any role but owner (whose
/// leaving the organization's own transaction checks): see
/// [`auth::leave`].
pub async fn leave(
    db: &Db,
    user_id: UserId,
    org: OrgId,
    request_id: &str,
) -> Result<(), DomainError> {
    let tx = AuthTx::for_user(db, user_id, request_id).await?;
    auth::leave(&tx, user_id, org, request_id).await?;
    tx.commit().await
}

/// Picks the active organization among `memberships` (the requested one, or
/// the only one) and builds its context for this request: the part of
/// [`resolve_user`] that does not touch the database, so a caller may reuse
/// what [`load_user`] read for a later request.
pub fn select(
    loaded: &LoadedUser,
    requested: Option<OrgId>,
    session: Session,
    request_id: &str,
) -> Result<ResolvedUser, ResolveError> {
    if session.revoked_by(loaded.user.sessions_valid_after) {
        return Err(ResolveError::SessionRevoked);
    }
    let memberships: Vec<Membership> = loaded
        .memberships
        .iter()
        .filter(|m| !session.revoked_by(m.sessions_valid_after))
        .cloned()
        .collect();
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
    if active.is_some_and(|m| m.organization.as_ref().is_some_and(|o| o.require_mfa))
        && !session.mfa
    {
        return Err(ResolveError::MfaRequired);
    }
    let context = active.map(|m| context_for(m, loaded.user.id, request_id));
    Ok(ResolvedUser {
        user: loaded.user.clone(),
        context,
        memberships,
        mfa: session.mfa,
    })
}

/// The context of `user` in `org` (or their only organization), from
/// their memberships. `user` is taken as given: the caller vouches for it.
pub async fn resolve_for(
    db: &Db,
    user: UserId,
    org: Option<OrgId>,
    request_id: &str,
) -> Result<VerifiedContext, DomainError> {
    let session = Session {
        issued_at: None,
        mfa: true,
    };
    match resolve_user(db, user, &Identity::default(), org, session, request_id).await {
        Ok(ResolvedUser {
            context: Some(ctx), ..
        }) => Ok(ctx),
        Ok(_)
        | Err(
            ResolveError::NotAMember | ResolveError::MfaRequired | ResolveError::SessionRevoked,
        ) => Err(DomainError::NotFound),
        Err(ResolveError::Domain(e)) => Err(e),
    }
}

/// Why an API key could not act.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// No key has this secret (or it is not shaped like one).
    #[error("unknown api key")]
    Unknown,
    /// The key was revoked or has expired.
    #[error("revoked or expired api key")]
    Inactive,
    /// The request names another organization than the key's.
    #[error("api key of another organization")]
    OtherOrganization,
    /// The database failed.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// Resolves a presented API key secret into the context of its
/// organization, in one `app_auth` transaction that can see only the row
/// with the presented hash; records the use at most once a minute.
///
/// The key acts as [`Role::API_KEY`](strata_domain::Role::API_KEY), limited
/// to its clients if it has any, and read-only if it is.
pub async fn resolve_api_key(
    db: &Db,
    secret: &str,
    requested: Option<OrgId>,
    request_id: &str,
) -> Result<VerifiedContext, ApiKeyError> {
    if !api_keys::is_well_formed(secret) {
        return Err(ApiKeyError::Unknown);
    }
    let hash = api_keys::hash_secret(secret);
    let tx = AuthTx::for_api_key(db, &hash, request_id).await?;
    let key = auth::presented_key(&tx, &hash)
        .await?
        .ok_or(ApiKeyError::Unknown)?;
    if !key.active {
        return Err(ApiKeyError::Inactive);
    }
    if requested.is_some_and(|org| org != key.org_id) {
        return Err(ApiKeyError::OtherOrganization);
    }
    if key.stale {
        auth::touch_key(&tx, &key, &hash).await?;
    }
    tx.commit().await?;
    let mut verified = VerifiedContext::new(TenantContext::resolved(Resolution {
        org_id: key.org_id,
        org_type: key.org_type,
        actor: Actor::ApiKey(key.id),
        role: Role::API_KEY,
        clients: if key.client_ids.is_empty() {
            ClientScope::All
        } else {
            ClientScope::Only(key.client_ids)
        },
        read_only: key.read_only,
        request_id: request_id.to_owned(),
    }));
    verified.key_rate_per_minute = key.rate_limit_per_minute;
    Ok(verified)
}
