//! Agent runs: the `agentRun` query, `runAgent` and `cancelAgentRun`, and
//! the types of runs and their outputs. Runs execute in the background
//! ([`strata_runner`]); the mutations only record them, in the request's
//! transaction, and the server hands them to the runner once that
//! transaction commits. The `agentRun` subscription is in
//! [`crate::subscription`].

use std::sync::Arc;

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ErrorExtensions, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use strata_domain::model;
use strata_domain::values::parse_optional_text;
use strata_domain::{CampaignId, OutputId};
use strata_persistence::repo::outputs::{self, NewRun, RunFilter, RunListFilter};
use strata_persistence::repo::usage;
use strata_runner::Runner;

use crate::args::parse_id;
use crate::error::{ErrorCode, domain_error};
use crate::lists::ListOrderInput;
use crate::loaders::RunPageKey;
use crate::pagination::Paging;
use crate::pagination::{Cursor, Totals, TotalsKind, at, connection, page_request};
use crate::savepoint::in_savepoint;
use crate::session::Committed;
use crate::state::RequestState;

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
    pub(crate) async fn id(&self) -> ID {
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
    /// The output typed by agent, once the run succeeded.
    async fn result(&self) -> Option<crate::results::AgentResult> {
        crate::results::of(self.0.output.as_ref())
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
    /// The output's own id (`runId` is its run's).
    pub(crate) async fn id(&self) -> ID {
        crate::global_id::opaque("AgentOutput", &[self.0.id.as_uuid()])
    }
    /// The run that produced it.
    async fn run_id(&self) -> ID {
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
    /// The output typed by agent: codegen gives each agent's shape a type
    /// of its own. Null only for a document of a version this server does
    /// not read; `content` has it as stored.
    async fn result(&self) -> Option<crate::results::AgentResult> {
        crate::results::of(self.0.output.as_ref())
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
            "id" => Value::String(
                crate::global_id::opaque("AgentOutput", &[r.id.as_uuid()]).to_string(),
            ),
            "runId" => Value::String(r.id.to_string()),
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
            "id" | "runId" | "agent" | "content" | "campaignId" | "createdAt"
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
    paging: Paging,
    wrap: impl Fn(model::AgentRun) -> N,
) -> Result<Connection<Cursor, N, Totals, EmptyFields>> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    let key = RunPageKey {
        campaign,
        filter,
        page: crate::loaders::PageShape::of(&page),
    };
    let found = state
        .run_page_loader()
        .load_one(key)
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or_else(|| page.page(Vec::new()));
    Ok(connection(
        &paging,
        found,
        TotalsKind::Runs(campaign, filter),
        |r| at(r.created_at, r.id.as_uuid()),
        wrap,
    ))
}

/// Input of `runAgent`.
#[derive(InputObject, Debug)]
pub struct RunAgentInput {
    /// The campaign the run is for.
    pub campaign_id: ID,
    /// Which agent.
    pub agent: AgentKind,
    /// Extra instructions for the agent (at most 4,000 characters).
    pub instructions: Option<String>,
    /// Input of `BUSINESS_STRATEGY`; give at most the one of `agent`.
    pub business_strategy: Option<BusinessStrategyInput>,
    /// Input of `BRAND_VOICE`.
    pub brand_voice: Option<BrandVoiceInput>,
    /// Input of `PERSONA_BUILDER`.
    pub persona_builder: Option<PersonaBuilderInput>,
    /// Input of `CAMPAIGN_PLANNER`.
    pub campaign_planner: Option<CampaignPlannerInput>,
}

/// What a business strategy is asked for.
#[derive(InputObject, Debug)]
pub struct BusinessStrategyInput {
    /// How far ahead it looks, in months (1 to 36; 12 when not given).
    pub horizon_months: Option<i32>,
    /// Business goals it must serve (at most 10, each at most 200
    /// characters).
    #[graphql(default)]
    pub goals: Vec<String>,
}

/// What a brand voice is asked for.
#[derive(InputObject, Debug)]
pub struct BrandVoiceInput {
    /// Channels to write sample messages for (at most 10, each at most 60
    /// characters).
    #[graphql(default)]
    pub channels: Vec<String>,
    /// Words the tone leads with (at most 10, each at most 60 characters).
    #[graphql(default)]
    pub tone: Vec<String>,
}

/// What a persona builder is asked for.
#[derive(InputObject, Debug)]
pub struct PersonaBuilderInput {
    /// Exactly how many personas to build (1 to 10; when not given, one per
    /// persona of the brand, or one).
    pub count: Option<i32>,
}

/// What a campaign plan is asked for.
#[derive(InputObject, Debug)]
pub struct CampaignPlannerInput {
    /// The campaign's length in weeks (1 to 52; 8 when not given): the
    /// phases' weeks add up to it.
    pub weeks: Option<i32>,
    /// Channels the plan must use (at most 10, each at most 60 characters).
    #[graphql(default)]
    pub channels: Vec<String>,
    /// The total budget, in whole units of the organization's currency (1
    /// to 1,000,000,000).
    pub budget: Option<i32>,
}

/// A GraphQL integer for a typed input: one below zero becomes 0, which
/// every bound refuses, so that the bound's message names it.
fn whole(v: Option<i32>) -> Option<u32> {
    v.map(|v| u32::try_from(v).unwrap_or(0))
}

impl RunAgentInput {
    /// The typed input of the run, validated against `agent`.
    fn typed(&self, kind: strata_agents::AgentKind) -> Result<strata_agents::AgentInput> {
        use strata_agents::AgentInput;
        let mut given = Vec::new();
        if let Some(i) = &self.business_strategy {
            given.push(AgentInput::BusinessStrategy(
                strata_agents::BusinessStrategyInput {
                    horizon_months: whole(i.horizon_months),
                    goals: i.goals.clone(),
                },
            ));
        }
        if let Some(i) = &self.brand_voice {
            given.push(AgentInput::BrandVoice(strata_agents::BrandVoiceInput {
                channels: i.channels.clone(),
                tone: i.tone.clone(),
            }));
        }
        if let Some(i) = &self.persona_builder {
            given.push(AgentInput::PersonaBuilder(
                strata_agents::PersonaBuilderInput {
                    count: whole(i.count),
                },
            ));
        }
        if let Some(i) = &self.campaign_planner {
            given.push(AgentInput::CampaignPlanner(
                strata_agents::CampaignPlannerInput {
                    weeks: whole(i.weeks),
                    channels: i.channels.clone(),
                    budget: whole(i.budget),
                },
            ));
        }
        AgentInput::for_run(kind, given, "input.")
            .map(AgentInput::normalized)
            .map_err(|e| {
                async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
                    ext.set("code", ErrorCode::BadUserInput.as_str());
                    ext.set("field", e.field.clone());
                })
            })
    }
}

/// The schema's runner, or INTERNAL when the schema was built without one
/// (see [`crate::schema`]).
pub(crate) fn runner<'a>(ctx: &'a Context<'_>) -> Result<&'a Arc<Runner>> {
    ctx.data::<Arc<Runner>>()
        .map_err(|_| ErrorCode::Internal.error("agents are not available on this server"))
}

/// Which runs `agentRuns` lists; every field given narrows the list.
#[derive(InputObject, Debug, Default)]
pub struct AgentRunFilter {
    /// Only runs in these statuses.
    pub status: Option<Vec<AgentRunStatus>>,
    /// Only runs of these agents.
    pub agent: Option<Vec<AgentKind>>,
    /// Only this campaign's runs.
    pub campaign_id: Option<ID>,
    /// Only this client's runs (agencies).
    pub client_id: Option<ID>,
    /// Only runs queued at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only runs queued before this time.
    pub created_before: Option<DateTime<Utc>>,
}

impl AgentRunFilter {
    fn parse(self) -> Result<RunListFilter> {
        Ok(RunListFilter {
            statuses: self
                .status
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            agents: self
                .agent
                .unwrap_or_default()
                .into_iter()
                .map(|a| strata_agents::AgentKind::from(a).as_str())
                .collect(),
            campaign: self
                .campaign_id
                .map(|c| parse_id("campaignId", &c))
                .transpose()?,
            client: crate::args::optional_client(self.client_id.as_ref())?,
            created_from: self.created_after,
            created_to: self.created_before,
        })
    }
}

/// What `usage` groups by.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum UsageDimension {
    /// By client (agencies).
    Client,
    /// By agent.
    Agent,
    /// By calendar month (UTC).
    Month,
}

/// One group of `usage`: the tokens and runs of the runs queued in the
/// range that share its client, agent or month (each null unless grouped
/// by).
#[derive(Clone, Debug)]
pub struct UsageRow(usage::UsageRow);

#[Object]
impl UsageRow {
    /// The client, when grouped by client.
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// That client, when grouped by client (null once it is erased).
    async fn client(&self, ctx: &Context<'_>) -> Result<Option<crate::types::Client>> {
        let Some(id) = self.0.client_id else {
            return Ok(None);
        };
        Ok(ctx
            .data::<RequestState>()?
            .client_loader()
            .load_one(strata_domain::ClientId::from_uuid(id))
            .await
            .map_err(|e| (*e).clone())?
            .map(crate::types::Client))
    }
    /// The agent, when grouped by agent.
    async fn agent(&self) -> Result<Option<AgentKind>> {
        self.0
            .agent
            .as_deref()
            .map(|a| {
                a.parse::<strata_agents::AgentKind>()
                    .map(AgentKind::from)
                    .map_err(|_| ErrorCode::Internal.error("internal error"))
            })
            .transpose()
    }
    /// The month (`2026-12`, UTC), when grouped by month.
    async fn month(&self) -> Option<String> {
        self.0.month.map(|m| m.format("%Y-%m").to_string())
    }
    /// Prompt tokens (in).
    async fn prompt_tokens(&self) -> u64 {
        u64::try_from(self.0.prompt_tokens).unwrap_or(0)
    }
    /// Completion tokens (out).
    async fn completion_tokens(&self) -> u64 {
        u64::try_from(self.0.completion_tokens).unwrap_or(0)
    }
    /// Both.
    async fn total_tokens(&self) -> u64 {
        u64::try_from(
            self.0
                .prompt_tokens
                .saturating_add(self.0.completion_tokens),
        )
        .unwrap_or(0)
    }
    /// Agent runs.
    async fn runs(&self) -> u64 {
        u64::try_from(self.0.runs).unwrap_or(0)
    }
}

/// The longest range `usage` reads, in days.
const MAX_USAGE_DAYS: i64 = 400;

/// Run queries.
#[derive(Debug, Default)]
pub struct RunQuery;

#[Object]
impl RunQuery {
    /// The organization's agent runs (those of the caller's clients), as
    /// `filter` narrows them, in `orderBy`'s order (newest first by
    /// default; runs have no name to sort by). A cursor only pages the list
    /// it came from.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn agent_runs(
        &self,
        ctx: &Context<'_>,
        filter: Option<AgentRunFilter>,
        order_by: Option<ListOrderInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<AgentRunConnection> {
        let filter = filter.unwrap_or_default().parse()?;
        let order = crate::lists::order(order_by, false)?;
        let paging = Paging::new(first, after, last, before)
            .shaped(order, crate::pagination::spelt(&filter));
        let page = page_request(&paging)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let found = outputs::list(tx, &filter, &page)
            .await
            .map_err(domain_error)?;
        Ok(connection(
            &paging,
            found,
            TotalsKind::AgentRuns(filter),
            |r| at(r.created_at, r.id.as_uuid()),
            AgentRun::from,
        ))
    }

    /// Token usage of the agent runs queued in `[from, to)` (at most 400
    /// days), grouped by `groupBy` (one total when empty), largest first:
    /// what an agency bills its clients on. For owners and admins, and for
    /// callers limited to some clients (their clients' runs only).
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default)] group_by: Vec<UsageDimension>,
    ) -> Result<Vec<UsageRow>> {
        if to <= from || (to - from).num_days() > MAX_USAGE_DAYS {
            return Err(ErrorCode::BadUserInput
                .error(format!(
                    "to: must be later than from, by at most {MAX_USAGE_DAYS} days"
                ))
                .extend_with(|_, e| e.set("field", "to")));
        }
        let by = usage::UsageGrouping {
            client: group_by.contains(&UsageDimension::Client),
            agent: group_by.contains(&UsageDimension::Agent),
            month: group_by.contains(&UsageDimension::Month),
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(usage::report(tx, from, to, by)
            .await
            .map_err(domain_error)?
            .into_iter()
            .map(UsageRow)
            .collect())
    }

    /// An agent run by id; null if it does not exist or is not visible.
    async fn agent_run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<AgentRun>> {
        let id = crate::global_id::run_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        Ok(state
            .run_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?
            .map(AgentRun::from))
    }
}

/// Run mutations.
#[derive(Debug, Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Queues an agent run for a campaign; follow it with the `agentRun`
    /// query or subscription.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RunAgent)"#)]
    async fn run_agent(&self, ctx: &Context<'_>, input: RunAgentInput) -> Result<AgentRun> {
        let campaign: CampaignId = parse_id("campaignId", &input.campaign_id)?;
        let instructions = parse_optional_text("instructions", input.instructions.as_deref(), 4000)
            .map_err(|e| domain_error(e.into()))?;
        let kind: strata_agents::AgentKind = input.agent.into();
        let typed = input.typed(kind)?;
        let default_quota = runner(ctx)?.monthly_token_quota();
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        // The organization's own quota, when the operator set one.
        let quota = strata_persistence::repo::organizations::current(tx)
            .await
            .map_err(domain_error)?
            .monthly_token_quota
            .or(default_quota);
        // Tokens used this month plus a reservation for each run in flight,
        // checked under a lock on the organization held until this
        // transaction (which inserts the run) ends: concurrent requests
        // cannot all pass on the same usage.
        if let Some(quota) = quota
            && !usage::within_quota(tx, quota, strata_agents::RUN_TOKEN_RESERVATION)
                .await
                .map_err(domain_error)?
        {
            return Err(ErrorCode::RateLimited.error(
                "the organization used its monthly token quota for agent runs, \
                 counting the runs still in flight",
            ));
        }
        let mut stored = serde_json::json!({ "instructions": instructions });
        if !typed.is_default()
            && let Some(map) = stored.as_object_mut()
        {
            map.insert(
                strata_agents::AgentInput::key(kind).to_owned(),
                typed.fields(),
            );
        }
        let new = NewRun {
            campaign_id: campaign,
            agent: kind.as_str(),
            input: stored,
        };
        let run = in_savepoint(tx, outputs::create(tx, new)).await?;
        state.record(Committed::RunQueued(Box::new(run.clone())));
        Ok(AgentRun::from(run))
    }

    /// Cancels a run that has not ended; an ended run is returned as it is.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::CancelAgentRun)"#)]
    async fn cancel_agent_run(&self, ctx: &Context<'_>, id: ID) -> Result<AgentRun> {
        let id: OutputId = crate::global_id::run_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let run = in_savepoint(tx, outputs::cancel(tx, id)).await?;
        state.record(Committed::RunCancelled(id));
        Ok(AgentRun::from(run))
    }
}
