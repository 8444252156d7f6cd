//! The object types of an organization's content: clients, campaigns,
//! personas and brand guidelines, with their connections. They refer to one
//! another (a client's campaigns, personas and guidelines; a campaign's or a
//! persona's client), which is why they share this module: kept with their
//! areas, those modules would import each other. The root fields that reach
//! them are in the area modules (`clients`, `campaigns`, `content`); other
//! object types live with their area.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, Json, Object, Result, Value};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use strata_domain::{ClientId, model};
use strata_persistence::repo::campaigns::CampaignFilter;
use strata_persistence::repo::outputs::RunFilter;
use strata_persistence::repo::personas::PersonaFilter;
use strata_persistence::repo::{campaigns, clients, personas};

use crate::error::{ErrorCode, domain_error};
use crate::loaders::{ClientList, ClientPage, ClientPageKey};
use crate::pagination::Paging;
use crate::pagination::{Cursor, Totals, TotalsKind, at, connection, page_request};
use crate::state::RequestState;

/// An agency's client.
#[derive(Clone, Debug)]
pub struct Client(pub model::Client);

#[Object]
impl Client {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The client's own white-label branding, if it has one (its briefs
    /// show it instead of the agency's).
    async fn branding(&self) -> Option<crate::organization::Branding> {
        crate::organization::Branding::from_stored(&self.0.branding)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn archived(&self) -> bool {
        self.0.archived_at.is_some()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// This client's campaigns, newest first.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<CampaignConnection> {
        let paging = Paging::new(first, after, last, before);
        let found = match of_client(ctx, self.0.id, ClientList::Campaigns, &paging).await? {
            (Some(ClientPage::Campaigns(p)), _) => p,
            (_, page) => page.page(Vec::new()),
        };
        Ok(connection(
            &paging,
            found,
            TotalsKind::OfClient(self.0.id, ClientList::Campaigns),
            |c| at(c.created_at, c.id.as_uuid()),
            |c| crate::leaves::Leaves(Campaign(c)),
        ))
    }
    /// This client's brand guidelines, if saved.
    async fn brand_guidelines(&self, ctx: &Context<'_>) -> Result<Option<BrandGuidelines>> {
        let state = ctx.data::<RequestState>()?;
        Ok(state
            .brand_loader()
            .load_one(self.0.id)
            .await
            .map_err(|e| (*e).clone())?
            .map(BrandGuidelines))
    }
    /// This client's personas, newest first.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    async fn personas(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<PersonaConnection> {
        let paging = Paging::new(first, after, last, before);
        let found = match of_client(ctx, self.0.id, ClientList::Personas, &paging).await? {
            (Some(ClientPage::Personas(p)), _) => p,
            (_, page) => page.page(Vec::new()),
        };
        Ok(connection(
            &paging,
            found,
            TotalsKind::OfClient(self.0.id, ClientList::Personas),
            |p| at(p.created_at, p.id.as_uuid()),
            Persona,
        ))
    }
}

/// A page of one of `client`'s lists, through the request's loader: a page
/// of clients costs one statement for all their campaigns (or personas).
async fn of_client(
    ctx: &Context<'_>,
    client: ClientId,
    list: ClientList,
    paging: &Paging,
) -> Result<(Option<ClientPage>, strata_persistence::repo::PageRequest)> {
    let page = page_request(paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let found = state
        .client_page_loader()
        .load_one(ClientPageKey {
            client,
            list,
            page: crate::loaders::PageShape::of(&page),
        })
        .await
        .map_err(|e| (*e).clone())?;
    Ok((found, page))
}

/// A campaign.
#[derive(Clone, Debug)]
pub struct Campaign(pub model::Campaign);

#[Object]
impl Campaign {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn objective(&self) -> Option<&str> {
        self.0.objective.as_deref()
    }
    /// Where the campaign is in its life.
    async fn status(&self) -> CampaignStatus {
        self.0.status.into()
    }
    /// The client's id (null for SMEs).
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The client (null for SMEs).
    async fn client(&self, ctx: &Context<'_>) -> Result<Option<Client>> {
        let Some(id) = self.0.client_id else {
            return Ok(None);
        };
        let state = ctx.data::<RequestState>()?;
        let found = state
            .client_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(found.map(Client))
    }
    /// The agents' validated outputs for this campaign, newest first.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    async fn outputs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<crate::runs::AgentOutputConnection> {
        crate::runs::run_connection(
            ctx,
            self.0.id,
            RunFilter::Outputs,
            Paging::new(first, after, last, before),
            |r| crate::leaves::Leaves(crate::runs::AgentOutput(r)),
        )
        .await
    }
    /// A self-contained, printable HTML brief of the campaign and its
    /// latest output of each agent, in the client's branding (else the
    /// organization's): every piece of tenant content escaped, no script,
    /// no request but the logo's. Safe to hand to the client.
    #[graphql(complexity = 20)]
    async fn brief(&self, ctx: &Context<'_>) -> Result<String> {
        crate::brief::render(ctx, &self.0).await
    }
    /// Every agent run for this campaign, whatever its status, newest first.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<crate::runs::AgentRunConnection> {
        crate::runs::run_connection(
            ctx,
            self.0.id,
            RunFilter::All,
            Paging::new(first, after, last, before),
            crate::runs::AgentRun::from,
        )
        .await
    }
}

impl crate::leaves::ScalarFields for Campaign {
    fn scalar(&self, name: &str) -> Option<Value> {
        use async_graphql::{InputType, ScalarType};
        let c = &self.0;
        let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(s.to_owned()));
        Some(match name {
            "id" => Value::String(c.id.to_string()),
            "name" => Value::String(c.name.clone()),
            "objective" => text(c.objective.as_deref()),
            "status" => InputType::to_value(&CampaignStatus::from(c.status)),
            "clientId" => c
                .client_id
                .map_or(Value::Null, |id| Value::String(id.to_string())),
            "createdAt" => ScalarType::to_value(&c.created_at),
            "updatedAt" => ScalarType::to_value(&c.updated_at),
            _ => return None,
        })
    }

    fn is_scalar(name: &str) -> bool {
        matches!(
            name,
            "id" | "name" | "objective" | "status" | "clientId" | "createdAt" | "updatedAt"
        )
    }
}

/// A campaign in a page or found by id: built directly when only its
/// scalars are asked for.
pub type CampaignNode = crate::leaves::Leaves<Campaign>;

/// A campaign's lifecycle status.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "strata_domain::model::CampaignStatus")]
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

/// Campaigns, Relay style.
pub type CampaignConnection = Connection<Cursor, CampaignNode, Totals, EmptyFields>;

/// Resolves a campaigns connection.
pub async fn campaign_connection(
    ctx: &Context<'_>,
    filter: CampaignFilter,
    paging: Paging,
) -> Result<CampaignConnection> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let result = campaigns::list(tx, &filter, &page)
        .await
        .map_err(domain_error)?;
    prefetch(ctx, state, tx, &result.items).await?;
    let order = paging.order;
    Ok(connection(
        &paging,
        result,
        TotalsKind::Campaigns(filter),
        |c| (order.value(c.created_at, &c.name), c.id.as_uuid()),
        |c| crate::leaves::Leaves(Campaign(c)),
    ))
}

/// Loads what the selection asks of a page of campaigns — their clients,
/// runs, outputs and counts — in one statement each, and feeds it to the
/// request's loaders, so the nested resolvers find it there. Batching by
/// the loaders' timer alone could split a page into several statements when
/// the server is busy; looking ahead makes the count fixed.
async fn prefetch(
    ctx: &Context<'_>,
    state: &RequestState,
    tx: &strata_persistence::TenantTx,
    items: &[model::Campaign],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    // A page's campaigns are selected as `edges { node { ... } }`, as
    // `nodes { ... }`, or both.
    let look = ctx.look_ahead();
    let nodes = [look.field("edges").field("node"), look.field("nodes")];
    if nodes.iter().any(|n| n.field("client").exists()) {
        let mut ids: Vec<strata_domain::ClientId> =
            items.iter().filter_map(|c| c.client_id).collect();
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            let found = clients::by_ids(tx, &ids).await.map_err(domain_error)?;
            state
                .client_loader()
                .feed_many(found.into_iter().map(|c| (c.id, c)))
                .await;
        }
    }
    let ids: Vec<strata_domain::CampaignId> = items.iter().map(|c| c.id).collect();
    for (name, filter) in [("outputs", RunFilter::Outputs), ("runs", RunFilter::All)] {
        let fields: Vec<_> = nodes.iter().map(|n| n.field(name)).collect();
        if !fields.iter().any(|f| f.exists()) {
            continue;
        }
        let mut seen = Vec::new();
        for selection in fields.iter().flat_map(|f| f.selection_fields()) {
            let Ok(args) = selection.arguments() else {
                continue;
            };
            let arg = |n: &str| args.iter().find(|(k, _)| k.as_str() == n).map(|(_, v)| v);
            let count = |n: &str| match arg(n) {
                None | Some(async_graphql::Value::Null) => Ok(None),
                Some(async_graphql::Value::Number(v)) => v
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .map(Some)
                    .ok_or(()),
                Some(_) => Err(()),
            };
            let cursor = |n: &str| match arg(n) {
                None | Some(async_graphql::Value::Null) => Ok(None),
                Some(async_graphql::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(()),
            };
            let (Ok(first), Ok(after), Ok(last), Ok(before)) = (
                count("first"),
                cursor("after"),
                count("last"),
                cursor("before"),
            ) else {
                continue;
            };
            // A bad argument is reported by the field's own resolver.
            let Ok(page) = page_request(&Paging::new(first, after, last, before)) else {
                continue;
            };
            let key_of = |c| crate::loaders::RunPageKey {
                campaign: c,
                filter,
                page: crate::loaders::PageShape::of(&page),
            };
            if seen.contains(&key_of(ids[0])) {
                continue;
            }
            seen.push(key_of(ids[0]));
            let mut pages =
                strata_persistence::repo::outputs::pages_for_campaigns(tx, &ids, filter, &page)
                    .await
                    .map_err(domain_error)?;
            let fed: Vec<_> = ids
                .iter()
                .map(|c| {
                    let found = pages.remove(c).unwrap_or_else(|| page.page(Vec::new()));
                    (key_of(*c), found)
                })
                .collect();
            state.run_page_loader().feed_many(fed).await;
        }
        if fields.iter().any(|f| f.field("totalCount").exists()) {
            let counts = strata_persistence::repo::outputs::counts_for_campaigns(tx, &ids, filter)
                .await
                .map_err(domain_error)?;
            let fed: Vec<_> = ids
                .iter()
                .map(|c| ((*c, filter), counts.get(c).copied().unwrap_or(0)))
                .collect();
            state.run_count_loader().feed_many(fed).await;
        }
    }
    Ok(())
}

/// Brand guidelines of an SME or of one client.
#[derive(Clone, Debug)]
pub struct BrandGuidelines(pub model::BrandGuidelines);

#[Object]
impl BrandGuidelines {
    /// The client (null for SMEs).
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// The guidelines as saved: a JSON object with the keys below and any
    /// others.
    async fn content(&self) -> Result<Json<Box<RawValue>>> {
        raw_json(&self.0.content)
    }
    /// The brand's voice (`content.voice`).
    async fn voice(&self) -> Option<&str> {
        text(&self.0.content, "voice")
    }
    /// Its tagline (`content.tagline`).
    async fn tagline(&self) -> Option<&str> {
        text(&self.0.content, "tagline")
    }
    /// Who it speaks to (`content.audience`).
    async fn audience(&self) -> Option<&str> {
        text(&self.0.content, "audience")
    }
    /// Words for its tone (`content.tone`).
    async fn tone(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "tone")
    }
    /// Its values (`content.values`).
    async fn values(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "values")
    }
    /// Its messaging pillars (`content.pillars`).
    async fn pillars(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "pillars")
    }
    /// What to do (`content.do`).
    #[graphql(name = "do")]
    async fn dos(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "do")
    }
    /// What to avoid (`content.dont`).
    #[graphql(name = "dont")]
    async fn donts(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "dont")
    }
    /// Words to use (`content.vocabulary`).
    async fn vocabulary(&self) -> Option<Vec<&str>> {
        texts(&self.0.content, "vocabulary")
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A text under `key` of a document (null when absent; documents saved
/// before the key was typed may hold something else, which reads as null
/// too).
fn text<'a>(doc: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    doc.get(key)?.as_str()
}

/// A list of texts under `key` of a document (a lone text is a list of
/// one), null like [`text`].
fn texts<'a>(doc: &'a serde_json::Value, key: &str) -> Option<Vec<&'a str>> {
    match doc.get(key)? {
        serde_json::Value::String(s) => Some(vec![s.as_str()]),
        serde_json::Value::Array(items) => items.iter().map(serde_json::Value::as_str).collect(),
        _ => None,
    }
}

/// A persona of an SME or of one client.
#[derive(Clone, Debug)]
pub struct Persona(pub model::Persona);

#[Object]
impl Persona {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Structured attributes as saved: a JSON object with the keys below
    /// and any others.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// Age range (`attributes.ageRange`).
    async fn age_range(&self) -> Option<&str> {
        text(&self.0.attributes, "ageRange")
    }
    /// Occupation (`attributes.occupation`).
    async fn occupation(&self) -> Option<&str> {
        text(&self.0.attributes, "occupation")
    }
    /// Where they live (`attributes.location`).
    async fn location(&self) -> Option<&str> {
        text(&self.0.attributes, "location")
    }
    /// What they want (`attributes.goals`).
    async fn goals(&self) -> Option<Vec<&str>> {
        texts(&self.0.attributes, "goals")
    }
    /// What gets in their way (`attributes.painPoints`).
    async fn pain_points(&self) -> Option<Vec<&str>> {
        texts(&self.0.attributes, "painPoints")
    }
    /// Where to reach them (`attributes.channels`).
    async fn channels(&self) -> Option<Vec<&str>> {
        texts(&self.0.attributes, "channels")
    }
    /// What interests them (`attributes.interests`).
    async fn interests(&self) -> Option<Vec<&str>> {
        texts(&self.0.attributes, "interests")
    }
    /// The client's id (null for SMEs).
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// The client (null for SMEs).
    async fn client(&self, ctx: &Context<'_>) -> Result<Option<Client>> {
        let Some(id) = self.0.client_id else {
            return Ok(None);
        };
        Ok(ctx
            .data::<RequestState>()?
            .client_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?
            .map(Client))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Personas, Relay style.
pub type PersonaConnection = Connection<Cursor, Persona, Totals, EmptyFields>;

/// Resolves a personas connection.
pub(crate) async fn persona_connection(
    ctx: &Context<'_>,
    filter: PersonaFilter,
    paging: Paging,
) -> Result<PersonaConnection> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let found = personas::list(tx, &filter, &page)
        .await
        .map_err(domain_error)?;
    let order = paging.order;
    Ok(connection(
        &paging,
        found,
        TotalsKind::Personas(filter),
        |p| (order.value(p.created_at, &p.name), p.id.as_uuid()),
        Persona,
    ))
}

/// A stored JSON document as a `JSON` value passed through as text: written
/// once into the response instead of being copied into GraphQL values node
/// by node (outputs are kilobytes each, and a page holds hundreds).
pub(crate) fn raw_json(value: &serde_json::Value) -> Result<Json<Box<RawValue>>> {
    serde_json::value::to_raw_value(value)
        .map(Json)
        .map_err(|_| ErrorCode::Internal.error("internal error"))
}
