//! Agent runs: `runAgent`, `cancelAgentRun` and the `agentRun`
//! subscription. Runs execute in the background ([`strata_runner`]); the
//! mutations only record them, in the request's transaction, and the server
//! hands them to the runner once that transaction commits.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result, Subscription};
use strata_domain::model::RunStatus;
use strata_domain::values::parse_optional_text;
use strata_domain::{CampaignId, DomainError, OutputId};
use strata_persistence::context::VerifiedContext;
use strata_persistence::repo::outputs::{self, NewRun};
use strata_persistence::repo::usage;
use strata_persistence::{Db, TenantTx};
use strata_runner::{RunEvent, Runner};
use tokio::sync::broadcast;

use crate::args::parse_id;
use crate::content::{AgentKind, AgentRun};
use crate::error::{ErrorCode, domain_error};
use crate::savepoint::in_savepoint;
use crate::session::Committed;
use crate::state::RequestState;

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

fn runner<'a>(ctx: &'a Context<'_>) -> Result<&'a Arc<Runner>> {
    ctx.data::<Arc<Runner>>()
        .map_err(|_| ErrorCode::Internal.error("agents are not available on this server"))
}

/// Run mutations.
#[derive(Debug, Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Queues an agent run for a campaign; follow it with the `agentRun`
    /// query or subscription.
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot run agents")"#)]
    async fn run_agent(&self, ctx: &Context<'_>, input: RunAgentInput) -> Result<AgentRun> {
        let campaign: CampaignId = parse_id("campaignId", &input.campaign_id)?;
        let instructions = parse_optional_text("instructions", input.instructions.as_deref(), 4000)
            .map_err(|e| domain_error(e.into()))?;
        let kind: strata_agents::AgentKind = input.agent.into();
        let typed = input.typed(kind)?;
        let quota = runner(ctx)?.monthly_token_quota();
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
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
    #[graphql(guard = r#"crate::guard::RoleGuard::write("this role cannot cancel agent runs")"#)]
    async fn cancel_agent_run(&self, ctx: &Context<'_>, id: ID) -> Result<AgentRun> {
        let id: OutputId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let run = in_savepoint(tx, outputs::cancel(tx, id)).await?;
        state.record(Committed::RunCancelled(id));
        Ok(AgentRun::from(run))
    }
}

/// How often a subscription re-reads its run when no event arrives (runs
/// executed by another gateway process publish nothing here).
const POLL: Duration = Duration::from_secs(2);

async fn read_run(
    db: &Db,
    ctx: &VerifiedContext,
    id: OutputId,
) -> Result<Option<strata_domain::model::AgentRun>, DomainError> {
    let tx = TenantTx::begin_read_only(db, ctx).await?;
    let run = outputs::by_id(&tx, id).await;
    tx.commit().await?;
    run
}

struct Watch {
    rx: Option<broadcast::Receiver<RunEvent>>,
    runner: Arc<Runner>,
    db: Db,
    ctx: VerifiedContext,
    id: OutputId,
    pending: Option<strata_domain::model::AgentRun>,
    last: Option<RunStatus>,
    done: bool,
    /// Re-checks the caller (on a WebSocket) before every event and every
    /// poll, and hands out the turns polls read the database with.
    check: Option<Arc<dyn crate::limits::Revalidate>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.rx.take();
        self.runner.release(self.id);
    }
}

/// The error a subscription ends with when its caller may no longer act.
fn revoked() -> async_graphql::Error {
    ErrorCode::Unauthenticated.error(
        "the credential of this connection no longer allows access: reconnect with a valid one",
    )
}

impl Watch {
    /// Asks whether the caller may still act, and with which context; an
    /// `Err` ends the stream. Without a check (not on a WebSocket) the
    /// context stays the one the subscription started with.
    async fn recheck(&mut self) -> Result<()> {
        let Some(check) = &self.check else {
            return Ok(());
        };
        let ctx = check.current().await.ok_or_else(revoked)?;
        self.ctx = ctx;
        Ok(())
    }

    /// Reads the run with the caller's current context, in a turn of the
    /// caller's when on a WebSocket. `Ok(None)` when the read had to wait
    /// for a turn; `Ok(Some(None))` when the run is no longer visible.
    async fn poll(&self) -> Result<Option<Option<strata_domain::model::AgentRun>>, DomainError> {
        let _turn = match &self.check {
            Some(check) => match check.turn().await {
                Some(turn) => Some(turn),
                None => return Ok(None),
            },
            None => None,
        };
        read_run(&self.db, &self.ctx, self.id).await.map(Some)
    }

    async fn next(&mut self) -> Option<Result<AgentRun>> {
        if self.done {
            return None;
        }
        if let Some(run) = self.pending.take() {
            return Some(Ok(self.emit(run, None)));
        }
        loop {
            let event = match &mut self.rx {
                Some(rx) => tokio::select! {
                    ev = rx.recv() => Some(ev),
                    () = tokio::time::sleep(POLL) => None,
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    None
                }
            };
            // Nothing goes out, and nothing is read, for a caller that may
            // no longer act.
            if let Err(e) = self.recheck().await {
                self.done = true;
                return Some(Err(e));
            }
            match event {
                Some(Ok(ev)) => return Some(Ok(self.emit(ev.run, ev.partial))),
                Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Some(Err(broadcast::error::RecvError::Closed)) => self.rx = None,
                None => {}
            }
            match self.poll().await {
                Ok(Some(Some(run))) if Some(run.status) != self.last => {
                    return Some(Ok(self.emit(run, None)));
                }
                Ok(Some(Some(_)) | None) => {}
                Ok(Some(None)) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(domain_error(e)));
                }
            }
        }
    }

    fn emit(&mut self, run: strata_domain::model::AgentRun, partial: Option<Arc<str>>) -> AgentRun {
        self.last = Some(run.status);
        self.done = run.status.is_terminal();
        AgentRun(run, partial)
    }
}

/// Subscriptions.
#[derive(Debug, Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// A run's state as it changes, with the text streamed so far, until it
    /// ends. The first event is the run as it is now.
    async fn agent_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<AgentRun>> + use<>> {
        let id: OutputId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        let tenant = state.tenant()?.clone();
        let runner = runner(ctx)?.clone();
        // On a WebSocket, a slot among the connection's subscriptions, held
        // until the stream ends or is stopped.
        let session = ctx.data_opt::<crate::limits::SocketSession>();
        let check = session.and_then(crate::limits::SocketSession::check);
        let slot = match session {
            None => None,
            Some(session) => Some(session.enter().ok_or_else(|| {
                ErrorCode::RateLimited.error(format!(
                    "at most {} subscriptions at once on one connection",
                    session.max()
                ))
            })?),
        };
        let db = state.db().clone();
        // Listen before reading, so no change falls between the two.
        let rx = runner.subscribe(id);
        let watch = Watch {
            rx: Some(rx),
            runner,
            db,
            ctx: tenant,
            id,
            pending: None,
            last: None,
            done: false,
            check,
        };
        let mut watch = watch;
        // The credential is checked as the subscription starts, whatever it
        // was when the connection was acknowledged.
        watch.recheck().await?;
        let current = read_run(&watch.db, &watch.ctx, id)
            .await
            .map_err(domain_error)?
            .ok_or_else(|| ErrorCode::NotFound.error("not found"))?;
        watch.pending = Some(current);
        Ok(stream::unfold((watch, slot), |(mut w, slot)| async move {
            let item = w.next().await?;
            Some((item, (w, slot)))
        }))
    }
}
