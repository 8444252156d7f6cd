//! The organization and who is calling: the `me` and `organization`
//! queries, `createOrganization` and `updateOrganization`, and the types
//! they return (`Viewer`, `User`, `Membership`, `Organization`) with their
//! enums.

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Json, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use strata_domain::{OrganizationName, Slug, UserId, model};
use strata_persistence::repo::organizations::{self, OrganizationChanges};

use crate::args::bad;
use crate::error::{ErrorCode, domain_error};
use crate::savepoint::in_savepoint;
use crate::state::RequestState;

/// SME or agency.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "OrganizationType", remote = "strata_domain::OrgType")]
pub enum OrganizationType {
    /// organization → campaigns → outputs.
    Sme,
    /// organization → clients → campaigns → outputs.
    Agency,
}

/// A member's role.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "strata_domain::Role")]
pub enum Role {
    /// Everything, including members, clients, settings and API keys.
    Owner,
    /// Everything an owner may do.
    Admin,
    /// All content of the organization.
    Strategist,
    /// Content of assigned clients only.
    AccountManager,
    /// Read only.
    Viewer,
}

/// A user.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    /// Strata's id for the user: the token's `sub` when it is a UUID,
    /// otherwise one derived from the token's issuer and `sub`.
    pub id: ID,
    /// E-mail, when a token carried one.
    pub email: Option<String>,
}

impl From<&model::User> for User {
    fn from(u: &model::User) -> Self {
        Self {
            id: ID(u.id.to_string()),
            email: u.email.clone(),
        }
    }
}

/// A membership of a user in an organization.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Membership {
    #[graphql(skip)]
    pub(crate) node_id: ID,
    /// The member.
    pub user_id: ID,
    /// The organization.
    pub organization_id: ID,
    /// Its type.
    pub organization_type: OrganizationType,
    /// The member's role there.
    pub role: Role,
    /// Clients assigned to an account manager.
    pub client_ids: Vec<ID>,
    /// Since when.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub(crate) member: MemberUser,
    #[graphql(skip)]
    pub(crate) summary: Option<model::OrganizationSummary>,
    #[graphql(skip)]
    pub(crate) org_type: strata_domain::OrgType,
}

/// A member as the other members of their organization see them: their
/// id, and the e-mail and name their last token carried.
#[derive(SimpleObject, Clone, Debug)]
pub struct MemberUser {
    /// Strata's id for the user.
    pub id: ID,
    /// E-mail, as their last token said.
    pub email: Option<String>,
    /// Name, as their last token said.
    pub name: Option<String>,
}

/// The organization of a membership: what a member may know of it.
#[derive(SimpleObject, Clone, Debug)]
pub struct MembershipOrganization {
    /// Its id.
    pub id: ID,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// SME or agency.
    #[graphql(name = "type")]
    pub org_type: OrganizationType,
    /// Whether its members must sign in with a second factor.
    pub require_mfa: bool,
}

impl From<&model::Membership> for Membership {
    fn from(m: &model::Membership) -> Self {
        Self {
            node_id: crate::global_id::opaque(
                "Membership",
                &[m.org_id.as_uuid(), m.user_id.as_uuid()],
            ),
            user_id: ID(m.user_id.to_string()),
            organization_id: ID(m.org_id.to_string()),
            organization_type: m.org_type.into(),
            role: m.role.into(),
            client_ids: m.client_ids.iter().map(|c| ID(c.to_string())).collect(),
            created_at: m.created_at,
            member: MemberUser {
                id: ID(m.user_id.to_string()),
                email: m.email.clone(),
                name: m.name.clone(),
            },
            summary: m.organization.clone(),
            org_type: m.org_type,
        }
    }
}

#[async_graphql::ComplexObject]
impl Membership {
    /// The membership's own id.
    pub(crate) async fn id(&self) -> ID {
        self.node_id.clone()
    }

    /// The member: id, and the e-mail and name their last token carried.
    async fn user(&self) -> MemberUser {
        self.member.clone()
    }

    /// The organization: id, name, slug and type.
    async fn organization(&self, ctx: &Context<'_>) -> Result<MembershipOrganization> {
        let summary = match &self.summary {
            Some(s) => s.clone(),
            None => {
                // A member listed in the active organization: it is that
                // one.
                let org = ctx.data::<RequestState>()?.organization().await?;
                model::OrganizationSummary {
                    name: org.name.clone(),
                    slug: org.slug.clone(),
                    require_mfa: org.require_mfa,
                }
            }
        };
        Ok(MembershipOrganization {
            id: self.organization_id.clone(),
            name: summary.name,
            slug: summary.slug,
            org_type: self.org_type.into(),
            require_mfa: summary.require_mfa,
        })
    }
}

/// An organization.
#[derive(Clone, Debug)]
pub struct Organization(pub model::Organization);

#[Object]
impl Organization {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// SME or AGENCY.
    #[graphql(name = "type")]
    async fn org_type(&self) -> OrganizationType {
        self.0.org_type.into()
    }
    /// White-label branding and other settings, as stored.
    async fn settings(&self) -> Json<serde_json::Value> {
        Json(self.0.settings.clone())
    }
    /// White-label branding, if set (`updateOrganization(input:
    /// {branding})`).
    async fn branding(&self) -> Option<Branding> {
        Branding::from_stored(self.0.settings.get("branding")?)
    }
    /// Whether members must sign in with a second factor (an `amr` the
    /// server accepts): their tokens without one are refused with
    /// `MFA_REQUIRED`.
    async fn require_mfa(&self) -> bool {
        self.0.require_mfa
    }
    /// How many days agent runs are kept (null: for ever).
    async fn retention_days(&self) -> Option<u32> {
        self.0.retention_days
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The monthly token quota for agent runs and what this month used of
    /// it, across every client (null for an organization other than the
    /// caller's active one, and for a caller limited to some clients).
    async fn quota(&self, ctx: &Context<'_>) -> Result<Option<OrganizationQuota>> {
        let state = ctx.data::<RequestState>()?;
        match state.context() {
            Some(c)
                if c.org_id() == self.0.id && *c.clients() == strata_domain::ClientScope::All => {}
            _ => return Ok(None),
        }
        let default = ctx
            .data_opt::<std::sync::Arc<strata_runner::Runner>>()
            .and_then(|r| r.monthly_token_quota());
        let tx = state.read_tx().await?;
        let used = strata_persistence::repo::usage::tokens_this_month(tx)
            .await
            .map_err(domain_error)?;
        Ok(Some(OrganizationQuota {
            monthly_tokens: self.0.monthly_token_quota.or(default),
            own: self.0.monthly_token_quota.is_some(),
            used_this_month: used,
        }))
    }
}

/// An organization's monthly token quota for agent runs.
#[derive(async_graphql::SimpleObject, Clone, Copy, Debug)]
pub struct OrganizationQuota {
    /// Tokens a calendar month (UTC) allows, prompt and completion
    /// together; null when unlimited.
    pub monthly_tokens: Option<u64>,
    /// Whether the operator set this organization's own quota (else the
    /// server's default applies).
    pub own: bool,
    /// Tokens used this month.
    pub used_this_month: u64,
}

/// White-label branding: what material for clients shows instead of
/// Strata's.
#[derive(async_graphql::SimpleObject, Clone, Debug, Default, PartialEq)]
pub struct Branding {
    /// Name shown instead of Strata's.
    pub display_name: Option<String>,
    /// HTTPS URL of the logo.
    pub logo_url: Option<String>,
    /// Primary colour, `#rrggbb`.
    pub primary_color: Option<String>,
    /// Secondary colour, `#rrggbb`.
    pub secondary_color: Option<String>,
    /// Contact address shown to clients.
    pub support_email: Option<String>,
}

impl Branding {
    /// Branding as stored (`settings.branding`, a client's `branding`);
    /// `None` when nothing is set.
    pub(crate) fn from_stored(stored: &serde_json::Value) -> Option<Self> {
        let b = stored.as_object()?;
        let text = |k: &str| b.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let branding = Branding {
            display_name: text("displayName"),
            logo_url: text("logoUrl"),
            primary_color: text("primaryColor"),
            secondary_color: text("secondaryColor"),
            support_email: text("supportEmail"),
        };
        (branding != Branding::default()).then_some(branding)
    }

    /// This branding, each field it leaves unset taken from `fallback`.
    pub(crate) fn or(self, fallback: Option<Branding>) -> Branding {
        let f = fallback.unwrap_or_default();
        Branding {
            display_name: self.display_name.or(f.display_name),
            logo_url: self.logo_url.or(f.logo_url),
            primary_color: self.primary_color.or(f.primary_color),
            secondary_color: self.secondary_color.or(f.secondary_color),
            support_email: self.support_email.or(f.support_email),
        }
    }
}

/// Who is calling, and where.
#[derive(Clone, Debug)]
pub struct Viewer;

#[Object]
impl Viewer {
    /// The signed-in user (null for API keys).
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(ctx.data::<RequestState>()?.user().map(User::from))
    }
    /// The active organization, if there is one.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        let state = ctx.data::<RequestState>()?;
        if state.context().is_none() {
            return Ok(None);
        }
        let tx = state.read_tx().await?;
        let org = strata_persistence::repo::organizations::current(tx)
            .await
            .map_err(domain_error)?;
        Ok(Some(Organization(org)))
    }
    /// The role in the active organization.
    async fn role(&self, ctx: &Context<'_>) -> Result<Option<Role>> {
        Ok(ctx
            .data::<RequestState>()?
            .context()
            .map(|c| c.role().into()))
    }
    /// Every organization the user belongs to.
    async fn memberships(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        Ok(ctx
            .data::<RequestState>()?
            .memberships()
            .iter()
            .map(Membership::from)
            .collect())
    }
}

/// Input of `createOrganization`.
#[derive(InputObject, Debug)]
pub struct CreateOrganizationInput {
    /// Display name.
    pub name: String,
    /// Globally unique slug.
    pub slug: String,
    /// SME or AGENCY.
    #[graphql(name = "type")]
    pub org_type: OrganizationType,
}

/// White-label branding of an organization.
#[derive(InputObject, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandingInput {
    /// Name shown instead of Strata's.
    pub display_name: Option<String>,
    /// HTTPS URL of the logo.
    pub logo_url: Option<String>,
    /// Primary colour, `#rrggbb`.
    pub primary_color: Option<String>,
    /// Secondary colour, `#rrggbb`.
    pub secondary_color: Option<String>,
    /// Contact address shown to clients.
    pub support_email: Option<String>,
}

/// Whether `c` is a colour as branding takes it: `#rrggbb`.
pub(crate) fn is_colour(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl BrandingInput {
    /// The stored form, after checking every field (absent fields are
    /// left out).
    pub(crate) fn parse(self) -> Result<serde_json::Value> {
        let field = |f: &'static str, m: &str| bad(strata_domain::ValidationError::new(f, m));
        if let Some(n) = &self.display_name
            && (n.trim().is_empty() || n.chars().count() > 200)
        {
            return Err(field(
                "branding.displayName",
                "must be 1 to 200 characters long",
            ));
        }
        if let Some(u) = &self.logo_url
            && (!u.starts_with("https://") || u.len() > 2048 || u.contains(char::is_whitespace))
        {
            return Err(field("branding.logoUrl", "must be an https:// URL"));
        }
        for (name, c) in [
            ("branding.primaryColor", &self.primary_color),
            ("branding.secondaryColor", &self.secondary_color),
        ] {
            if let Some(c) = c
                && !is_colour(c)
            {
                return Err(field(name, "must be a colour like #1a2b3c"));
            }
        }
        if let Some(e) = &self.support_email
            && (e.len() > 320 || !e.contains('@') || e.contains(char::is_whitespace))
        {
            return Err(field("branding.supportEmail", "must be an e-mail address"));
        }
        serde_json::to_value(&self).map_err(|_| ErrorCode::Internal.error("internal error"))
    }
}

/// Input of `updateOrganization`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateOrganizationInput {
    /// New display name.
    pub name: Option<String>,
    /// New white-label branding (replaces the current one).
    pub branding: Option<BrandingInput>,
    /// Whether members must sign in with a second factor (OWNER; turning
    /// it on takes a token that proves one).
    pub require_mfa: Option<bool>,
    /// Agent runs and their outputs older than this many days are deleted
    /// by a background sweep (1 to 3650; 0 keeps them for ever, the
    /// default).
    pub retention_days: Option<i32>,
}

/// Queries of the caller and the active organization.
#[derive(Debug, Default)]
pub struct OrganizationQuery;

#[Object]
impl OrganizationQuery {
    /// The caller: user, memberships, active organization and role.
    async fn me(&self) -> Viewer {
        Viewer
    }

    /// The active organization.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(Organization(
            organizations::current(tx).await.map_err(domain_error)?,
        ))
    }
}

/// `createOrganization`, a part of its own: the schema lists it first, before
/// the other areas' mutations, and `updateOrganization` after them.
#[derive(Debug, Default)]
pub struct CreateOrganizationMutation;

#[Object]
impl CreateOrganizationMutation {
    /// Creates an organization; the caller becomes its OWNER.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> Result<Organization> {
        let state = ctx.data::<RequestState>()?;
        let user = state.user().ok_or_else(|| {
            ErrorCode::Forbidden.error(strata_domain::Action::CreateOrganization.refusal())
        })?;
        let name = OrganizationName::parse("name", &input.name).map_err(bad)?;
        let slug = Slug::parse("slug", &input.slug).map_err(bad)?;
        // A new organization is its own tenant: its own transaction, under
        // a fresh id.
        let (org, _) = organizations::create(
            state.db(),
            UserId::from_uuid(user.id.as_uuid()),
            input.org_type.into(),
            &name,
            &slug,
            state.request_id(),
        )
        .await
        .map_err(domain_error)?;
        Ok(Organization(org))
    }
}

/// Changes to the active organization.
#[derive(Debug, Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Changes the active organization's name or white-label branding
    /// (OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::UpdateOrganization)"#)]
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> Result<Organization> {
        let changes = OrganizationChanges {
            name: input
                .name
                .map(|n| OrganizationName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            branding: input.branding.map(BrandingInput::parse).transpose()?,
            require_mfa: input.require_mfa,
            retention_days: input
                .retention_days
                .map(|d| match d {
                    0 => Ok(None),
                    1..=3650 => Ok(u32::try_from(d).ok()),
                    _ => Err(ErrorCode::BadUserInput
                        .error(
                            "retentionDays: must be between 1 and 3650, or 0 to keep runs for ever",
                        )
                        .extend_with(|_, e| e.set("field", "retentionDays"))),
                })
                .transpose()?,
        };
        let state = ctx.data::<RequestState>()?;
        let tenant = state.tenant()?;
        if changes.require_mfa.is_some() && tenant.role() != strata_domain::Role::Owner {
            return Err(ErrorCode::Forbidden
                .error("only owners can change the organization's MFA policy")
                .extend_with(|_, e| e.set("field", "requireMfa")));
        }
        if changes.require_mfa == Some(true) && !state.credential().mfa {
            // No lock-out by accident: whoever turns it on proves they can
            // meet it.
            return Err(ErrorCode::MfaRequired
                .error("requireMfa: sign in with a second factor before requiring one")
                .extend_with(|_, e| e.set("field", "requireMfa")));
        }
        let policy = changes.require_mfa.is_some();
        let org = tenant.org_id();
        let tx = state.write_tx().await?;
        let updated = in_savepoint(tx, organizations::update(tx, changes)).await?;
        if policy {
            state.record(crate::session::Committed::PolicyChanged(org));
        }
        Ok(Organization(updated))
    }

    /// Erases the active organization and everything of it, in both
    /// schemas, in one transaction (OWNER): `confirmSlug` must be its slug.
    /// Its members' accounts stay (they may belong elsewhere); its runs in
    /// flight stop. Returns its id.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::DeleteOrganization)"#)]
    async fn delete_organization(&self, ctx: &Context<'_>, confirm_slug: String) -> Result<ID> {
        let state = ctx.data::<RequestState>()?;
        let org = state.tenant()?.org_id();
        let tx = state.write_tx().await?;
        let erased = in_savepoint(tx, organizations::delete(tx, &confirm_slug)).await?;
        for then in crate::session::Committed::of_erasure(erased) {
            state.record(then);
        }
        Ok(ID(org.to_string()))
    }
}
