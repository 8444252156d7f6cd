//! The mutation root. Every mutation parses its input into domain types
//! before touching the database, runs inside a savepoint of the request's
//! transaction (so a failed mutation leaves nothing behind while earlier
//! ones in the same document stand), and writes its audit row there.

use std::future::Future;

use async_graphql::{Context, ID, InputObject, Object, Result};
use strata_domain::{
    CampaignName, ClientId, ClientName, DomainError, OrgId, OrganizationName, Slug, TenantContext,
    UserId, values::parse_optional_text,
};
use strata_persistence::TenantTx;
use strata_persistence::repo::campaigns::{self, NewCampaign};
use strata_persistence::repo::{clients, members, organizations};

use crate::error::{ErrorCode, domain_error};
use crate::query::parse_id;
use crate::state::RequestState;
use crate::types::{Campaign, Client, Membership, Organization, OrganizationType, Role};

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

fn bad(e: strata_domain::ValidationError) -> async_graphql::Error {
    domain_error(e.into())
}

async fn in_savepoint<T>(
    tx: &TenantTx,
    work: impl Future<Output = Result<T, DomainError>>,
) -> Result<T> {
    tx.savepoint().await.map_err(domain_error)?;
    let result = work.await;
    tx.end_savepoint(result.is_ok())
        .await
        .map_err(domain_error)?;
    result.map_err(domain_error)
}

/// Mutations.
#[derive(Debug, Default)]
pub struct Mutation;

#[Object]
impl Mutation {
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
        let ctx = TenantContext::for_new_organization(
            UserId::from_uuid(user.id.as_uuid()),
            OrgId::generate(),
            input.org_type.into(),
            state.request_id().to_owned(),
        );
        // A new organization is its own tenant: its own transaction.
        let tx = TenantTx::begin(state.db(), &ctx)
            .await
            .map_err(domain_error)?;
        match organizations::create(&tx, &name, &slug).await {
            Ok((org, _)) => {
                tx.commit().await.map_err(domain_error)?;
                Ok(Organization(org))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(domain_error(e))
            }
        }
    }

    /// Adds a member to the active organization (OWNER/ADMIN).
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<Membership> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let user: UserId = parse_id("userId", &input.user_id)?;
        let client_ids = input
            .client_ids
            .unwrap_or_default()
            .iter()
            .map(|c| parse_id::<ClientId>("clientIds", c))
            .collect::<Result<Vec<_>>>()?;
        let tx = state.write_tx().await?;
        let m = in_savepoint(tx, members::add(tx, user, input.role.into(), &client_ids)).await?;
        Ok(Membership::from(&m))
    }

    /// Creates a client (agencies; OWNER/ADMIN).
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
}
