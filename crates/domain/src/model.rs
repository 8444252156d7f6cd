//! Domain records returned by repositories. These are not the database rows
//! and not the GraphQL types: each layer converts at its boundary.

use chrono::{DateTime, Utc};

use crate::context::{OrgType, Role};
use crate::ids::{CampaignId, ClientId, OrgId, UserId};

/// An organization.
#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// SME or agency.
    pub org_type: OrgType,
    /// Display name.
    pub name: String,
    /// Globally unique slug.
    pub slug: String,
    /// White-label branding and other settings.
    pub settings: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Its id (the JWT `sub`).
    pub id: UserId,
    /// E-mail, when a token carried one.
    pub email: Option<String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
}

/// A user's membership in an organization.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    /// The organization.
    pub org_id: OrgId,
    /// Its type.
    pub org_type: OrgType,
    /// The member.
    pub user_id: UserId,
    /// The member's role.
    pub role: Role,
    /// Clients assigned to an account manager (empty for other roles).
    pub client_ids: Vec<ClientId>,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// An agency's client.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// The agency.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Slug, unique within the agency.
    pub slug: String,
    /// When archived, if it was.
    pub archived_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A campaign of an SME, or of an agency's client.
#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    /// Its id.
    pub id: CampaignId,
    /// The organization.
    pub org_id: OrgId,
    /// The client (agencies only).
    pub client_id: Option<ClientId>,
    /// Name.
    pub name: String,
    /// Objective, free text.
    pub objective: Option<String>,
    /// Lifecycle status (`DRAFT`, `ACTIVE`, ...).
    pub status: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
