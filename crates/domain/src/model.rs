//! Domain records returned by repositories. These are not the database rows
//! and not the GraphQL types: each layer converts at its boundary.

use chrono::{DateTime, Utc};

use crate::context::{OrgType, Role};
use crate::ids::{
    ApiKeyId, CampaignId, ClientId, InvitationId, OrgId, OutputId, PersonaId, UserId,
};

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
    /// Its own monthly token quota for agent runs, when the operator set
    /// one (else the server's applies).
    pub monthly_token_quota: Option<u64>,
    /// Whether its members must sign in with a second factor.
    pub require_mfa: bool,
    /// How many days its agent runs are kept, when it limits them.
    pub retention_days: Option<u32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a member may know of an organization they belong to, read with
/// their memberships.
#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationSummary {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Whether its members must sign in with a second factor.
    pub require_mfa: bool,
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
    /// Tokens issued before this instant are refused (`revokeSessions`).
    pub sessions_valid_after: Option<DateTime<Utc>>,
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
    /// The member's e-mail, as their last token said.
    pub email: Option<String>,
    /// The member's name, as their last token said.
    pub name: Option<String>,
    /// Tokens issued before this instant no longer reach the organization
    /// (`revokeSessions` by an owner or admin).
    pub sessions_valid_after: Option<DateTime<Utc>>,
    /// The organization, when read for the member themself.
    pub organization: Option<OrganizationSummary>,
}

/// An invitation to join an organization, by e-mail.
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organization.
    pub org_id: OrgId,
    /// The invited address (lower case).
    pub email: String,
    /// The role the invitee gets.
    pub role: Role,
    /// The clients the invitee is limited to.
    pub client_ids: Vec<ClientId>,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Until when it may be accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was accepted, if it was.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Who accepted it.
    pub accepted_by: Option<UserId>,
}

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    /// May be accepted.
    Pending,
    /// Accepted: the invitee is a member.
    Accepted,
    /// Revoked by an owner or admin.
    Revoked,
    /// Not accepted in time.
    Expired,
}

impl Invitation {
    /// Where it stands at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.accepted_at.is_some() {
            InvitationStatus::Accepted
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }
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
    /// Its own white-label branding (an empty object when it has none).
    pub branding: serde_json::Value,
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
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A campaign's lifecycle status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CampaignStatus {
    /// Being prepared.
    Draft,
    /// Running.
    Active,
    /// On hold.
    Paused,
    /// Done.
    Completed,
    /// Kept for reference only.
    Archived,
}

impl CampaignStatus {
    /// Every status.
    pub const ALL: [CampaignStatus; 5] = [
        CampaignStatus::Draft,
        CampaignStatus::Active,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Archived,
    ];

    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "DRAFT",
            CampaignStatus::Active => "ACTIVE",
            CampaignStatus::Paused => "PAUSED",
            CampaignStatus::Completed => "COMPLETED",
            CampaignStatus::Archived => "ARCHIVED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where an agent run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// Talking to the model.
    Running,
    /// Finished with a validated output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the run has ended.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// A JSON document as the database returned it: text known to be valid
/// JSON, passed on without being parsed into a tree (outputs are kilobytes
/// each, and a page of runs holds hundreds).
#[derive(Clone, Debug)]
pub struct StoredJson(Box<serde_json::value::RawValue>);

impl StoredJson {
    /// Wraps JSON text; `None` if it is not valid JSON.
    pub fn from_text(text: String) -> Option<Self> {
        serde_json::value::RawValue::from_string(text)
            .ok()
            .map(Self)
    }

    /// The document from a value.
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        serde_json::value::to_raw_value(value).ok().map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The document as raw JSON, for serializing as it is.
    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// The document parsed.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// An agent run and, once it succeeded, its output.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRun {
    /// Its id (also the output's).
    pub id: OutputId,
    /// The organization.
    pub org_id: OrgId,
    /// The client (agencies only).
    pub client_id: Option<ClientId>,
    /// The campaign it is for.
    pub campaign_id: CampaignId,
    /// Which agent (`BUSINESS_STRATEGY`, ...).
    pub agent: String,
    /// Where it is.
    pub status: RunStatus,
    /// What was asked.
    pub input: serde_json::Value,
    /// The validated output, once succeeded, as stored.
    pub output: Option<StoredJson>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Prompt tokens used.
    pub prompt_tokens: u32,
    /// Completion tokens used.
    pub completion_tokens: u32,
    /// Who asked.
    pub created_by: Option<UserId>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Brand guidelines: of an SME, or of one client of an agency.
#[derive(Clone, Debug, PartialEq)]
pub struct BrandGuidelines {
    /// The organization.
    pub org_id: OrgId,
    /// The client (agencies only).
    pub client_id: Option<ClientId>,
    /// The guidelines, a JSON object.
    pub content: serde_json::Value,
    /// When they last changed.
    pub updated_at: DateTime<Utc>,
}

/// A persona: of an SME, or of one client of an agency.
#[derive(Clone, Debug, PartialEq)]
pub struct Persona {
    /// Its id.
    pub id: PersonaId,
    /// The organization.
    pub org_id: OrgId,
    /// The client (agencies only).
    pub client_id: Option<ClientId>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Structured attributes, a JSON object.
    pub attributes: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One row of the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Its id.
    pub id: uuid::Uuid,
    /// The client concerned (agencies).
    pub client_id: Option<ClientId>,
    /// The acting user, if a user acted.
    pub actor_user_id: Option<UserId>,
    /// The acting API key, if a key acted.
    pub actor_api_key_id: Option<ApiKeyId>,
    /// The operation (`createCampaign`, ...).
    pub operation: String,
    /// The kind of object changed.
    pub target_type: String,
    /// The object changed.
    pub target_id: Option<uuid::Uuid>,
    /// The request that did it.
    pub request_id: Option<String>,
    /// Non-secret details.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}
