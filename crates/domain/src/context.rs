//! The tenant context: who is acting, in which organization, with which role
//! and over which clients. Every resolver reads one; the repositories reach
//! it through their transaction, which the persistence crate begins only
//! from a context it resolved itself (its `VerifiedContext`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, ClientId, OrgId, UserId};

/// The two kinds of tenant. The kind decides which schema holds the
/// organization's data and which runtime database role serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrgType {
    /// A small or medium enterprise: organization → campaigns → outputs.
    Sme,
    /// An agency: organization → clients → campaigns → outputs.
    Agency,
}

impl OrgType {
    /// The stored and API spelling (`SME`, `AGENCY`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgType::Sme => "SME",
            OrgType::Agency => "AGENCY",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SME" => Some(OrgType::Sme),
            "AGENCY" => Some(OrgType::Agency),
            _ => None,
        }
    }
}

impl fmt::Display for OrgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Everything, including members, clients, settings and API keys.
    Owner,
    /// Everything an owner may do.
    Admin,
    /// All content of the organization.
    Strategist,
    /// Content of the clients assigned to them only.
    AccountManager,
    /// Read only.
    Viewer,
}

impl Role {
    /// Every role, most privileged first.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Strategist,
        Role::AccountManager,
        Role::Viewer,
    ];

    /// The stored and API spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Strategist => "STRATEGIST",
            Role::AccountManager => "ACCOUNT_MANAGER",
            Role::Viewer => "VIEWER",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// May manage members, clients, settings and API keys, and read the
    /// audit log.
    pub const fn can_administer(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// May create and change content (campaigns, guidelines, personas, runs).
    pub const fn can_write_content(self) -> bool {
        !matches!(self, Role::Viewer)
    }

    /// Sees every client of the organization (rather than assigned ones)
    /// unless limited to some ([`Role::may_be_limited`]): an account
    /// manager never does.
    pub const fn sees_all_clients(self) -> bool {
        !matches!(self, Role::AccountManager)
    }

    /// May be limited to some clients of an agency: an account manager
    /// always is, a strategist or a viewer when assigned clients (an
    /// agency's own customer with a read-only login to its client). Owners
    /// and admins see every client.
    pub const fn may_be_limited(self) -> bool {
        matches!(self, Role::AccountManager | Role::Strategist | Role::Viewer)
    }

    /// The role an API key acts with: it may write content (unless the key
    /// is read-only) but never administer, and sees the clients its scope
    /// allows.
    pub const API_KEY: Role = Role::Strategist;
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which clients of an agency a context may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientScope {
    /// Every client of the organization (and, for SMEs, the whole org).
    All,
    /// Only these clients; empty means none.
    Only(Vec<ClientId>),
}

impl ClientScope {
    /// Whether `client` is inside the scope.
    pub fn includes(&self, client: ClientId) -> bool {
        match self {
            ClientScope::All => true,
            ClientScope::Only(ids) => ids.contains(&client),
        }
    }
}

/// Who performs the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// An API key (third-party integration).
    ApiKey(ApiKeyId),
    /// The server itself (the retention sweep): no user, no key.
    System,
}

impl Actor {
    /// The user, when a user acts.
    pub const fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User(id) => Some(*id),
            Actor::ApiKey(_) | Actor::System => None,
        }
    }

    /// The API key, when a key acts.
    pub const fn api_key_id(&self) -> Option<ApiKeyId> {
        match self {
            Actor::User(_) | Actor::System => None,
            Actor::ApiKey(id) => Some(*id),
        }
    }
}

/// The tenant context of one request.
///
/// Fields are private so a context cannot be assembled piecemeal or changed
/// after the fact. Building one proves nothing by itself: a tenant
/// transaction is begun only from the persistence crate's
/// `VerifiedContext`, which wraps a context that crate built from a verified
/// credential and the database's memberships (or for an organization it is
/// creating under a fresh id).
#[derive(Clone, Debug)]
pub struct TenantContext {
    org_id: OrgId,
    org_type: OrgType,
    actor: Actor,
    role: Role,
    clients: ClientScope,
    read_only: bool,
    request_id: String,
}

/// Everything the credential resolver learned, to build a [`TenantContext`].
#[derive(Clone, Debug)]
pub struct Resolution {
    /// The active organization.
    pub org_id: OrgId,
    /// Its type, from the database.
    pub org_type: OrgType,
    /// Who acts.
    pub actor: Actor,
    /// The role in that organization, from the database.
    pub role: Role,
    /// The client scope, from role and assignments (or the key's client).
    pub clients: ClientScope,
    /// A read-only credential (read-only API key).
    pub read_only: bool,
    /// The request id, for the audit log and logs.
    pub request_id: String,
}

impl TenantContext {
    /// A context from a resolved credential. The persistence crate's
    /// credential resolver calls it with what the database said; a context
    /// built anywhere else opens no tenant transaction.
    pub fn resolved(r: Resolution) -> Self {
        // An account manager never sees all clients, whatever the caller
        // passed.
        let clients = match r.clients {
            ClientScope::All if !r.role.sees_all_clients() => ClientScope::Only(Vec::new()),
            other => other,
        };
        Self {
            org_id: r.org_id,
            org_type: r.org_type,
            actor: r.actor,
            role: r.role,
            clients,
            read_only: r.read_only,
            request_id: r.request_id,
        }
    }

    /// The context of a user creating a new organization: they become its
    /// owner. The persistence crate calls it with a fresh organization id,
    /// which names no existing data; a context built anywhere else opens no
    /// tenant transaction.
    pub fn for_new_organization(
        user: UserId,
        org_id: OrgId,
        org_type: OrgType,
        request_id: String,
    ) -> Self {
        Self {
            org_id,
            org_type,
            actor: Actor::User(user),
            role: Role::Owner,
            clients: ClientScope::All,
            read_only: false,
            request_id,
        }
    }

    /// The context of the server's own maintenance in `org_id` (the
    /// retention sweep): no user or key acts; it may change content, not
    /// members, clients, keys or settings.
    pub fn for_system(org_id: OrgId, org_type: OrgType, request_id: String) -> Self {
        Self {
            org_id,
            org_type,
            actor: Actor::System,
            role: Role::Strategist,
            clients: ClientScope::All,
            read_only: false,
            request_id,
        }
    }

    /// The context of the operator acting from the command line on one
    /// organization (`strata export`): the server acts, as an owner would,
    /// over every client.
    pub fn for_operator(org_id: OrgId, org_type: OrgType, request_id: String) -> Self {
        Self {
            org_id,
            org_type,
            actor: Actor::System,
            role: Role::Owner,
            clients: ClientScope::All,
            read_only: false,
            request_id,
        }
    }

    /// The active organization.
    pub fn org_id(&self) -> OrgId {
        self.org_id
    }

    /// The organization's type.
    pub fn org_type(&self) -> OrgType {
        self.org_type
    }

    /// Who acts.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The actor's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The clients this context may see.
    pub fn clients(&self) -> &ClientScope {
        &self.clients
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// May change content.
    pub fn can_write(&self) -> bool {
        !self.read_only && self.role.can_write_content()
    }

    /// May administer the organization.
    pub fn can_administer(&self) -> bool {
        !self.read_only && self.role.can_administer() && !matches!(self.actor, Actor::ApiKey(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolution(role: Role, clients: ClientScope) -> Resolution {
        Resolution {
            org_id: OrgId::generate(),
            org_type: OrgType::Agency,
            actor: Actor::User(UserId::generate()),
            role,
            clients,
            read_only: false,
            request_id: "r".into(),
        }
    }

    #[test]
    fn an_account_manager_never_gets_all_clients() {
        let ctx = TenantContext::resolved(resolution(Role::AccountManager, ClientScope::All));
        assert_eq!(ctx.clients(), &ClientScope::Only(Vec::new()));
    }

    #[test]
    fn a_viewer_cannot_write_and_an_owner_can() {
        let viewer = TenantContext::resolved(resolution(Role::Viewer, ClientScope::All));
        assert!(!viewer.can_write());
        let owner = TenantContext::resolved(resolution(Role::Owner, ClientScope::All));
        assert!(owner.can_write() && owner.can_administer());
    }

    #[test]
    fn roles_round_trip_through_their_spelling() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("ROOT"), None);
    }
}
