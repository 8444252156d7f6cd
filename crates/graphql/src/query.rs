//! The query root.

use async_graphql::{Context, ErrorExtensions, ID, Object, Result};
use strata_domain::{CampaignId, ClientId, Slug};
use strata_persistence::repo::campaigns::CampaignFilter;
use strata_persistence::repo::{clients, organizations};

use crate::args::parse_id;
use crate::error::{ErrorCode, domain_error};
use crate::state::RequestState;
use crate::types::{
    Campaign, CampaignConnection, CampaignNode, Client, ClientConnection, MembershipConnection,
    Organization, Viewer, campaign_connection, client_connection, membership_connection,
};

/// Identity, organization, client and campaign queries.
#[derive(Debug, Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
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

    /// The agency's clients visible to the caller (empty for SMEs).
    #[graphql(complexity = "crate::pagination::list_cost(first, child_complexity)")]
    async fn clients(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ClientConnection> {
        client_connection(ctx, first, after).await
    }

    /// A client by id or slug; null if it does not exist or is not visible.
    async fn client(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Option<Client>> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let found = match (id, slug) {
            (Some(id), None) => {
                let id: ClientId = parse_id("id", &id)?;
                let tx = state.read_tx().await?;
                clients::by_id(tx, id).await
            }
            (None, Some(slug)) => {
                // A slug that cannot exist is simply not found.
                let Ok(slug) = Slug::parse("slug", &slug) else {
                    return Ok(None);
                };
                let tx = state.read_tx().await?;
                clients::by_slug(tx, &slug).await
            }
            _ => {
                return Err(ErrorCode::BadUserInput
                    .error("give exactly one of id and slug")
                    .extend_with(|_, e| e.set("field", "id")));
            }
        };
        Ok(found.map_err(domain_error)?.map(Client))
    }

    /// Campaigns visible to the caller, optionally of one client.
    #[graphql(complexity = "crate::pagination::list_cost(first, child_complexity)")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CampaignConnection> {
        let client_id = client_id
            .map(|c| parse_id::<ClientId>("clientId", &c))
            .transpose()?;
        campaign_connection(ctx, CampaignFilter { client_id }, first, after).await
    }

    /// A campaign by id; null if it does not exist or is not visible.
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Option<CampaignNode>> {
        let id: CampaignId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let found = state
            .campaign_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(found.map(|c| crate::leaves::Leaves(Campaign(c))))
    }

    /// Members of the active organization, oldest first (owners and
    /// admins).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, child_complexity)",
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can list members")"#
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<MembershipConnection> {
        membership_connection(ctx, first, after).await
    }
}
