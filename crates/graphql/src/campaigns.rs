//! Campaigns: the `campaigns` and `campaign` queries, `createCampaign`,
//! `updateCampaign` and `deleteCampaign`. The `Campaign` type is in
//! [`crate::types`], with the content that refers to it.

use async_graphql::{Context, ID, InputObject, Object, Result};
use strata_domain::{CampaignId, CampaignName, ClientId, values::parse_optional_text};
use strata_persistence::repo::campaigns::{self, CampaignChanges, CampaignFilter, NewCampaign};

use crate::args::{bad, parse_id};
use crate::lists::{self, ListOrderInput};
use crate::pagination::Paging;
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::{
    Campaign, CampaignConnection, CampaignNode, CampaignStatus, campaign_connection,
};

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

/// Which campaigns `campaigns` lists; every field given narrows the list.
#[derive(InputObject, Debug, Default)]
#[graphql(name = "CampaignFilter")]
pub struct CampaignFilterInput {
    /// Only campaigns in these states.
    pub status: Option<Vec<CampaignStatus>>,
    /// Only campaigns created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only campaigns created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Campaign queries.
#[derive(Debug, Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    /// Campaigns visible to the caller, optionally of one client, as
    /// `filter` and `search` (a case-insensitive part of the name) narrow
    /// them, in `orderBy`'s order (newest first by default). A cursor only
    /// pages the list it came from: the same client, filter, search and
    /// order.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
        filter: Option<CampaignFilterInput>,
        search: Option<String>,
        order_by: Option<ListOrderInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<CampaignConnection> {
        let client_id = client_id
            .map(|c| parse_id::<ClientId>("clientId", &c))
            .transpose()?;
        let given = filter.unwrap_or_default();
        let (created_after, created_before) =
            lists::created_range(given.created_after, given.created_before)?;
        let mut status: Vec<_> = given
            .status
            .unwrap_or_default()
            .into_iter()
            .map(strata_domain::model::CampaignStatus::from)
            .collect();
        status.sort_by_key(|s| s.as_str());
        status.dedup();
        let filter = CampaignFilter {
            client_id,
            status,
            created_after,
            created_before,
            search: lists::search(search)?,
        };
        let order = lists::order(order_by, true)?;
        let spelt = crate::pagination::spelt(&filter);
        campaign_connection(
            ctx,
            filter,
            Paging::new(first, after, last, before).shaped(order, spelt),
        )
        .await
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
}

/// Campaign mutations.
#[derive(Debug, Default)]
pub struct CampaignMutation;

#[Object]
impl CampaignMutation {
    /// Creates a campaign (clientId required for agencies, forbidden for
    /// SMEs).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::CreateCampaign)"#)]
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
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::UpdateCampaign)"#)]
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
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::DeleteCampaign)"#)]
    async fn delete_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let campaign: CampaignId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, campaigns::delete(tx, campaign)).await?;
        Ok(id)
    }
}
