//! The mutation root. Every mutation parses its input into domain types
//! before touching the database, runs inside a savepoint of the request's
//! transaction (so a failed mutation leaves nothing behind while earlier
//! ones in the same document stand), and writes its audit row there.

use async_graphql::{Context, ID, InputObject, Object, Result};
use strata_domain::{
    CampaignId, CampaignName, ClientId, ClientName, OrganizationName, Slug, UserId,
    values::parse_optional_text,
};
use strata_persistence::repo::campaigns::{self, CampaignChanges, NewCampaign};
use strata_persistence::repo::clients::ClientChanges;
use strata_persistence::repo::organizations::OrganizationChanges;
use strata_persistence::repo::{clients, members, organizations};

use crate::args::{bad, client_ids, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::{
    Campaign, CampaignStatus, Client, Membership, Organization, OrganizationType, Role,
};

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

/// Input of `addMember`.
#[derive(InputObject, Debug)]
pub struct AddMemberInput {
    /// The user to add.
    pub user_id: ID,
    /// Their role.
    pub role: Role,
    /// For account managers of an agency: the clients they may see.
    pub client_ids: Option<Vec<ID>>,
}

/// Input of `createClient`.
#[derive(InputObject, Debug)]
pub struct CreateClientInput {
    /// Display name.
    pub name: String,
    /// Slug, unique within the agency.
    pub slug: String,
}

/// Input of `createCampaign`.
#[derive(InputObject, Debug)]
pub struct CreateCampaignInput {
    /// Name.
    pub name: String,
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ID>,
    /// Objective.
    pub objective: Option<String>,
}

/// Input of `updateMember`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateMemberInput {
    /// The member.
    pub user_id: ID,
    /// New role.
    pub role: Option<Role>,
    /// For account managers of an agency: the clients they may see (replaces
    /// the current assignments).
    pub client_ids: Option<Vec<ID>>,
}

/// Input of `updateClient`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateClientInput {
    /// The client.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New slug, unique within the agency.
    pub slug: Option<String>,
}

/// Input of `updateCampaign`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateCampaignInput {
    /// The campaign.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New objective (an empty string clears it).
    pub objective: Option<String>,
    /// New status.
    pub status: Option<CampaignStatus>,
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

impl BrandingInput {
    fn parse(self) -> Result<serde_json::Value> {
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
                && !(c.len() == 7
                    && c.starts_with('#')
                    && c[1..].bytes().all(|b| b.is_ascii_hexdigit()))
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
}

/// Organization, member, client and campaign mutations.
#[derive(Debug, Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Creates an organization; the caller becomes its OWNER.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> Result<Organization> {
        let state = ctx.data::<RequestState>()?;
        let user = state.user().ok_or_else(|| {
            ErrorCode::Forbidden.error("only a signed-in user can create an organization")
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

    /// Adds a member to the active organization (OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can add members")"#
    )]
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<Membership> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let user: UserId = parse_id("userId", &input.user_id)?;
        let client_ids = client_ids(input.client_ids)?.unwrap_or_default();
        let tx = state.write_tx().await?;
        let m = in_savepoint(tx, members::add(tx, user, input.role.into(), &client_ids)).await?;
        state.record(crate::session::Committed::MembershipChanged(user));
        Ok(Membership::from(&m))
    }

    /// Creates a client (agencies; OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can create clients")"#
    )]
    async fn create_client(&self, ctx: &Context<'_>, input: CreateClientInput) -> Result<Client> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let name = ClientName::parse("name", &input.name).map_err(bad)?;
        let slug = Slug::parse("slug", &input.slug).map_err(bad)?;
        let tx = state.write_tx().await?;
        Ok(Client(
            in_savepoint(tx, clients::create(tx, &name, &slug)).await?,
        ))
    }

    /// Creates a campaign (clientId required for agencies, forbidden for
    /// SMEs).
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot create campaigns")"#)]
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CreateCampaignInput,
    ) -> Result<Campaign> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let new = NewCampaign {
            name: CampaignName::parse("name", &input.name).map_err(bad)?,
            client_id: input
                .client_id
                .map(|c| parse_id::<ClientId>("clientId", &c))
                .transpose()?,
            objective: parse_optional_text("objective", input.objective.as_deref(), 4000)
                .map_err(bad)?,
        };
        let tx = state.write_tx().await?;
        Ok(Campaign(
            in_savepoint(tx, campaigns::create(tx, new)).await?,
        ))
    }

    /// Changes a campaign.
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot change campaigns")"#)]
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        input: UpdateCampaignInput,
    ) -> Result<Campaign> {
        let id: CampaignId = parse_id("id", &input.id)?;
        let changes = CampaignChanges {
            name: input
                .name
                .map(|n| CampaignName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            objective: input
                .objective
                .map(|o| parse_optional_text("objective", Some(&o), 4000))
                .transpose()
                .map_err(bad)?,
            status: input.status.map(Into::into),
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Campaign(
            in_savepoint(tx, campaigns::update(tx, id, changes)).await?,
        ))
    }

    /// Deletes a campaign with its runs and outputs; returns its id.
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot delete campaigns")"#)]
    async fn delete_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let campaign: CampaignId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, campaigns::delete(tx, campaign)).await?;
        Ok(id)
    }

    /// Renames a client or changes its slug (agencies; OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can change clients")"#
    )]
    async fn update_client(&self, ctx: &Context<'_>, input: UpdateClientInput) -> Result<Client> {
        let id: ClientId = parse_id("id", &input.id)?;
        let changes = ClientChanges {
            name: input
                .name
                .map(|n| ClientName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            slug: input
                .slug
                .map(|s| Slug::parse("slug", &s))
                .transpose()
                .map_err(bad)?,
            archived: None,
        };
        client_change(ctx, id, changes, "updateClient").await
    }

    /// Archives a client: it stays readable, marked archived (OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can change clients")"#
    )]
    async fn archive_client(&self, ctx: &Context<'_>, id: ID) -> Result<Client> {
        let id: ClientId = parse_id("id", &id)?;
        let changes = ClientChanges {
            archived: Some(true),
            ..Default::default()
        };
        client_change(ctx, id, changes, "archiveClient").await
    }

    /// Restores an archived client (OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can change clients")"#
    )]
    async fn restore_client(&self, ctx: &Context<'_>, id: ID) -> Result<Client> {
        let id: ClientId = parse_id("id", &id)?;
        let changes = ClientChanges {
            archived: Some(false),
            ..Default::default()
        };
        client_change(ctx, id, changes, "restoreClient").await
    }

    /// Changes a member's role or client assignments (OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can change members")"#
    )]
    async fn update_member(
        &self,
        ctx: &Context<'_>,
        input: UpdateMemberInput,
    ) -> Result<Membership> {
        let user: UserId = parse_id("userId", &input.user_id)?;
        let assigned = client_ids(input.client_ids)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let m = in_savepoint(
            tx,
            members::update(tx, user, input.role.map(Into::into), assigned.as_deref()),
        )
        .await?;
        state.record(crate::session::Committed::MembershipChanged(user));
        Ok(Membership::from(&m))
    }

    /// Removes a member from the organization (OWNER/ADMIN); returns the
    /// user's id.
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can remove members")"#
    )]
    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> Result<ID> {
        let user: UserId = parse_id("userId", &user_id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, members::remove(tx, user)).await?;
        state.record(crate::session::Committed::MembershipChanged(user));
        Ok(user_id)
    }

    /// Changes the active organization's name or white-label branding
    /// (OWNER/ADMIN).
    #[graphql(
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can change the organization")"#
    )]
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
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Organization(
            in_savepoint(tx, organizations::update(tx, changes)).await?,
        ))
    }
}

async fn client_change(
    ctx: &Context<'_>,
    id: ClientId,
    changes: ClientChanges,
    operation: &'static str,
) -> Result<Client> {
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.write_tx().await?;
    Ok(Client(
        in_savepoint(tx, clients::update(tx, id, changes, operation)).await?,
    ))
}
