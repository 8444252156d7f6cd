//! Content beside campaigns: brand guidelines, personas, agent runs and their
//! outputs, and the audit log. Per organization for SMEs, per client for
//! agencies; the API is the same for both.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use strata_domain::model;
use strata_domain::values::parse_optional_text;
use strata_domain::{CampaignId, ClientId, PersonaId, PersonaName};
use strata_persistence::repo::outputs::RunFilter;
use strata_persistence::repo::personas::{self, NewPersona, PersonaChanges};
use strata_persistence::repo::{audit, brand};

use crate::args::{bad, document, optional_client, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::loaders::RunPageKey;
use crate::pagination::{Cursor, Totals, TotalsKind, connection, page_request};
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::Client;

/// The agents Strata runs.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "strata_agents::AgentKind")]
pub enum AgentKind {
    /// Positioning, SWOT, objectives and recommendations.
    BusinessStrategy,
    /// Tone of voice from the brand guidelines.
    BrandVoice,
    /// Target personas.
    PersonaBuilder,
    /// Channels, phases and KPIs for the campaign.
    CampaignPlanner,
}

/// Where a run is in its life.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "strata_domain::model::RunStatus")]
pub enum AgentRunStatus {
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

fn agent_kind(run: &model::AgentRun) -> Result<AgentKind> {
    run.agent
        .parse::<strata_agents::AgentKind>()
        .map(AgentKind::from)
        .map_err(|_| ErrorCode::Internal.error("internal error"))
}

/// Tokens an agent run used.
#[derive(async_graphql::SimpleObject, Clone, Copy, Debug)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// Both.
    pub total_tokens: u32,
}

fn usage(run: &model::AgentRun) -> TokenUsage {
    TokenUsage {
        prompt_tokens: run.prompt_tokens,
        completion_tokens: run.completion_tokens,
        total_tokens: run.prompt_tokens.saturating_add(run.completion_tokens),
    }
}

/// An agent run: queued, running or ended.
#[derive(Clone, Debug)]
pub struct AgentRun(pub model::AgentRun, pub Option<std::sync::Arc<str>>);

impl From<model::AgentRun> for AgentRun {
    fn from(run: model::AgentRun) -> Self {
        Self(run, None)
    }
}

#[Object]
impl AgentRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> AgentRunStatus {
        self.0.status.into()
    }
    async fn agent(&self) -> Result<AgentKind> {
        agent_kind(&self.0)
    }
    /// The validated output, once the run succeeded.
    async fn output(&self) -> Option<Json<&RawValue>> {
        self.0.output.as_ref().map(|o| Json(o.raw()))
    }
    /// What was asked: `instructions`, and the agent's typed input under
    /// its key (`personaBuilder`, ...) when one was given.
    async fn input(&self) -> Json<&serde_json::Value> {
        Json(&self.0.input)
    }
    /// Why the run failed or was cancelled.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The stable code of [`error`](Self::error) when it has one
    /// (`PROVIDER_UNAVAILABLE`, `PROVIDER_REFUSED`, `PROVIDER_TIMEOUT`,
    /// `INVALID_OUTPUT`, ...).
    async fn error_code(&self) -> Option<&str> {
        let error = self.0.error.as_deref()?;
        let (code, _) = error.split_once(": ")?;
        (!code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .then_some(code)
    }
    /// The text the model produced so far, while the run streams (only in
    /// `agentRun` subscription events).
    async fn partial_output(&self) -> Option<&str> {
        self.1.as_deref()
    }
    async fn campaign_id(&self) -> ID {
        ID(self.0.campaign_id.to_string())
    }
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// Tokens used so far.
    async fn usage(&self) -> TokenUsage {
        usage(&self.0)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// How long the run took, once it ended.
    async fn latency_ms(&self) -> Option<i64> {
        match (self.0.started_at, self.0.finished_at) {
            (Some(s), Some(f)) => Some((f - s).num_milliseconds().max(0)),
            _ => None,
        }
    }
}

/// A validated agent output (a run that succeeded).
#[derive(Clone, Debug)]
pub struct AgentOutput(pub model::AgentRun);

#[Object]
impl AgentOutput {
    /// The id (the run's).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn agent(&self) -> Result<AgentKind> {
        agent_kind(&self.0)
    }
    /// The output: a versioned JSON document whose shape depends on the
    /// agent.
    async fn content(&self) -> Result<Json<&RawValue>> {
        match &self.0.output {
            Some(o) => Ok(Json(o.raw())),
            // Listed outputs have succeeded, so this does not happen; null
            // is what a missing document reads as.
            None => serde_json::from_str::<&'static RawValue>("null")
                .map(Json)
                .map_err(|_| ErrorCode::Internal.error("internal error")),
        }
    }
    async fn campaign_id(&self) -> ID {
        ID(self.0.campaign_id.to_string())
    }
    async fn usage(&self) -> TokenUsage {
        usage(&self.0)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The run that produced it.
    async fn run(&self) -> AgentRun {
        AgentRun::from(self.0.clone())
    }
}

impl crate::leaves::ScalarFields for AgentOutput {
    fn scalar(&self, name: &str) -> Option<async_graphql::Value> {
        use async_graphql::{InputType, ScalarType, Value};
        let r = &self.0;
        Some(match name {
            "id" => Value::String(r.id.to_string()),
            // An agent this build does not know takes the general path,
            // which reports it.
            "agent" => InputType::to_value(&agent_kind(r).ok()?),
            // As the JSON scalar resolves it.
            "content" => match &r.output {
                Some(o) => async_graphql::to_value(o.raw()).unwrap_or_default(),
                None => Value::Null,
            },
            "campaignId" => Value::String(r.campaign_id.to_string()),
            "createdAt" => ScalarType::to_value(&r.created_at),
            _ => return None,
        })
    }

    fn is_scalar(name: &str) -> bool {
        matches!(
            name,
            "id" | "agent" | "content" | "campaignId" | "createdAt"
        )
    }
}

/// Agent outputs, Relay style; an output asked only for scalars is built
/// directly.
pub type AgentOutputConnection =
    Connection<Cursor, crate::leaves::Leaves<AgentOutput>, Totals, EmptyFields>;
/// Agent runs, Relay style.
pub type AgentRunConnection = Connection<Cursor, AgentRun, Totals, EmptyFields>;

/// Resolves a campaign's runs or outputs through the request's loader, so a
/// page of campaigns costs one statement for all their outputs.
pub(crate) async fn run_connection<N: async_graphql::OutputType>(
    ctx: &Context<'_>,
    campaign: CampaignId,
    filter: RunFilter,
    first: Option<i32>,
    after: Option<String>,
    wrap: impl Fn(model::AgentRun) -> N,
) -> Result<Connection<Cursor, N, Totals, EmptyFields>> {
    let page = page_request(first, after)?;
    let state = ctx.data::<RequestState>()?;
    let has_previous = page.after.is_some();
    let key = RunPageKey {
        campaign,
        filter,
        limit: page.limit,
        after: page.after.map(|(at, id)| (at.timestamp_micros(), id)),
    };
    let found = state
        .run_page_loader()
        .load_one(key)
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or(strata_persistence::repo::Page {
            items: Vec::new(),
            has_next_page: false,
        });
    Ok(connection(
        found,
        TotalsKind::Runs(campaign, filter),
        |r| (r.created_at, r.id.as_uuid()),
        wrap,
        has_previous,
    ))
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
    /// The guidelines: a JSON object (voice, colours, do's and don'ts, ...).
    async fn content(&self) -> Result<Json<Box<RawValue>>> {
        raw_json(&self.0.content)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A persona of an SME or of one client.
#[derive(Clone, Debug)]
pub struct Persona(pub model::Persona);

#[Object]
impl Persona {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Structured attributes (age range, goals, channels, ...).
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
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
    client: Option<ClientId>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<PersonaConnection> {
    let page = page_request(first, after)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let has_previous = page.after.is_some();
    let found = personas::list(tx, client, &page)
        .await
        .map_err(domain_error)?;
    Ok(connection(
        found,
        TotalsKind::Personas(client),
        |p| (p.created_at, p.id.as_uuid()),
        Persona,
        has_previous,
    ))
}

/// One row of the audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry(pub model::AuditRecord);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The mutation (`createCampaign`, ...).
    async fn operation(&self) -> &str {
        &self.0.operation
    }
    /// The kind of object changed.
    async fn target_type(&self) -> &str {
        &self.0.target_type
    }
    /// The object changed.
    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.map(|t| ID(t.to_string()))
    }
    /// The client concerned (agencies).
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// The user who acted, if a user acted.
    async fn actor_user_id(&self) -> Option<ID> {
        self.0.actor_user_id.map(|u| ID(u.to_string()))
    }
    /// The API key that acted, if a key acted.
    async fn actor_api_key_id(&self) -> Option<ID> {
        self.0.actor_api_key_id.map(|k| ID(k.to_string()))
    }
    /// The request that did it (`X-Request-Id`).
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// Non-secret details.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Audit log entries, Relay style.
pub type AuditEntryConnection = Connection<Cursor, AuditEntry, Totals, EmptyFields>;

/// Content queries.
#[derive(Debug, Default)]
pub struct ContentQuery;

#[Object]
impl ContentQuery {
    /// Brand guidelines of the SME, or of a client of the agency; null when
    /// none are saved or the client is not visible.
    async fn brand_guidelines(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
    ) -> Result<Option<BrandGuidelines>> {
        let client = optional_client(client_id.as_ref())?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(brand::get(tx, client)
            .await
            .map_err(domain_error)?
            .map(BrandGuidelines))
    }

    /// Personas of the SME, or of the agency's visible clients (optionally
    /// of one), newest first.
    #[graphql(complexity = "crate::pagination::list_cost(first, child_complexity)")]
    async fn personas(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PersonaConnection> {
        let client = optional_client(client_id.as_ref())?;
        persona_connection(ctx, client, first, after).await
    }

    /// A persona by id; null if it does not exist or is not visible.
    async fn persona(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Persona>> {
        let id: PersonaId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(personas::by_id(tx, id)
            .await
            .map_err(domain_error)?
            .map(Persona))
    }

    /// An agent run by id; null if it does not exist or is not visible.
    async fn agent_run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<AgentRun>> {
        let id = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        Ok(state
            .run_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?
            .map(AgentRun::from))
    }

    /// The organization's audit log, newest first (owners and admins).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, child_complexity)",
        guard = r#"crate::guard::RoleGuard::administer("only owners and admins can read the audit log")"#
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditEntryConnection> {
        let page = page_request(first, after)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let has_previous = page.after.is_some();
        let found = audit::list(tx, &page).await.map_err(domain_error)?;
        Ok(connection(
            found,
            TotalsKind::Audit,
            |a| (a.created_at, a.id),
            AuditEntry,
            has_previous,
        ))
    }
}

/// Input of `saveBrandGuidelines`.
#[derive(InputObject, Debug)]
pub struct SaveBrandGuidelinesInput {
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ID>,
    /// The guidelines: a JSON object of at most 64 KiB.
    pub content: Json<serde_json::Value>,
}

/// Input of `createPersona`.
#[derive(InputObject, Debug)]
pub struct CreatePersonaInput {
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ID>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Structured attributes: a JSON object.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Input of `updatePersona`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdatePersonaInput {
    /// The persona.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New description (an empty string clears it).
    pub description: Option<String>,
    /// New attributes.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Content mutations.
#[derive(Debug, Default)]
pub struct ContentMutation;

#[Object]
impl ContentMutation {
    /// Saves (replaces) the brand guidelines of the SME or of a client.
    #[graphql(
        guard = r#"crate::guard::RoleGuard::write("this role cannot change brand guidelines")"#
    )]
    async fn save_brand_guidelines(
        &self,
        ctx: &Context<'_>,
        input: SaveBrandGuidelinesInput,
    ) -> Result<BrandGuidelines> {
        let client = optional_client(input.client_id.as_ref())?;
        let content = document("content", input.content.0)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(BrandGuidelines(
            in_savepoint(tx, brand::save(tx, client, content)).await?,
        ))
    }

    /// Creates a persona (clientId required for agencies, forbidden for
    /// SMEs).
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot create personas")"#)]
    async fn create_persona(
        &self,
        ctx: &Context<'_>,
        input: CreatePersonaInput,
    ) -> Result<Persona> {
        let new = NewPersona {
            client_id: optional_client(input.client_id.as_ref())?,
            name: PersonaName::parse("name", &input.name).map_err(bad)?,
            description: parse_optional_text("description", input.description.as_deref(), 4000)
                .map_err(bad)?,
            attributes: input
                .attributes
                .map(|a| document("attributes", a.0))
                .transpose()?,
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Persona(in_savepoint(tx, personas::create(tx, new)).await?))
    }

    /// Updates a persona.
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot change personas")"#)]
    async fn update_persona(
        &self,
        ctx: &Context<'_>,
        input: UpdatePersonaInput,
    ) -> Result<Persona> {
        let id: PersonaId = parse_id("id", &input.id)?;
        let changes = PersonaChanges {
            name: input
                .name
                .map(|n| PersonaName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            description: input
                .description
                .map(|d| parse_optional_text("description", Some(&d), 4000))
                .transpose()
                .map_err(bad)?,
            attributes: input
                .attributes
                .map(|a| document("attributes", a.0))
                .transpose()?,
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Persona(
            in_savepoint(tx, personas::update(tx, id, changes)).await?,
        ))
    }

    /// Deletes a persona; returns its id.
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot delete personas")"#)]
    async fn delete_persona(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let persona: PersonaId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, personas::delete(tx, persona)).await?;
        Ok(id)
    }
}

/// A stored JSON document as a `JSON` value passed through as text: written
/// once into the response instead of being copied into GraphQL values node
/// by node (outputs are kilobytes each, and a page holds hundreds).
pub(crate) fn raw_json(value: &serde_json::Value) -> Result<Json<Box<RawValue>>> {
    serde_json::value::to_raw_value(value)
        .map(Json)
        .map_err(|_| ErrorCode::Internal.error("internal error"))
}
