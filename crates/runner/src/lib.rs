//! The agent-run orchestrator: executes queued agent runs in the
//! background with bounded concurrency, publishes their progress to
//! listeners, and keeps the leases that tell other gateways a run is still
//! alive. It is a library of the gateway, not part of its API: it never
//! names async-graphql or axum and never speaks HTTP. Callers hand it runs
//! that are already stored and listen to its events; whatever queued them
//! (the GraphQL API) stays out of this crate, so that the API can
//! change without touching how runs execute.
//!
//! `runAgent` stores a QUEUED run (and its audit row) in the request's
//! transaction; once that commits, the server hands the run to the
//! [`Runner`], which executes it with bounded concurrency (overall and per
//! organization) under the tenant context of the user who asked: every read
//! and write of the run goes through a tenant transaction, RLS included.
//! Status changes and streamed text are published on a per-run channel that
//! `agentRun` subscriptions listen to.
//!
//! Several gateways may share a database, so a run belongs to the process
//! that holds it through a lease: the runner renews the lease of every run
//! it holds (queued in its memory or executing) every
//! [`Runner::LEASE_RENEW_EVERY`], and every [`Runner::SWEEP_EVERY`] (and once
//! at start, [`Runner::recover`]) fails the QUEUED or RUNNING runs whose
//! lease is older than [`Runner::LEASE_STALE_AFTER`]: the process that held
//! them stopped. Both run in the background for as long as the runner lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use strata_agents::{AgentContext, AgentInput, AgentKind, DeltaSink, SharedProvider, run_agent};
use strata_domain::model::{AgentRun, RunStatus};
use strata_domain::{DomainError, OrgId, OutputId};
use strata_persistence::context::VerifiedContext;
use strata_persistence::maintenance::{self, RunLocks};
use strata_persistence::repo::outputs::{self, Transition};
use strata_persistence::repo::personas;
use strata_persistence::repo::{PageRequest, brand, campaigns, clients, organizations, usage};
use strata_persistence::{Db, TenantTx};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How runs are executed.
#[derive(Clone)]
pub struct RunnerConfig {
    /// The model provider.
    pub provider: SharedProvider,
    /// The model, when not the provider's default.
    pub model: Option<String>,
    /// Runs executing at once, overall.
    pub max_concurrent: usize,
    /// Runs executing at once per organization.
    pub max_per_org: usize,
    /// Tokens an organization may use per calendar month; `None` is no
    /// limit.
    pub monthly_token_quota: Option<u64>,
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("provider", &self.provider.name())
            .field("max_concurrent", &self.max_concurrent)
            .field("max_per_org", &self.max_per_org)
            .field("monthly_token_quota", &self.monthly_token_quota)
            .finish_non_exhaustive()
    }
}

/// A change of a run: its state, and the text streamed so far while it runs.
#[derive(Clone, Debug)]
pub struct RunEvent {
    /// The run as it now is.
    pub run: AgentRun,
    /// Text the model produced so far (while RUNNING).
    pub partial: Option<Arc<str>>,
}

/// Executes agent runs.
pub struct Runner {
    db: Db,
    config: RunnerConfig,
    overall: Arc<Semaphore>,
    per_org: Mutex<HashMap<OrgId, Arc<Semaphore>>>,
    channels: Mutex<HashMap<OutputId, broadcast::Sender<RunEvent>>>,
    /// The runs this process holds (and keeps the leases of), from
    /// [`Runner::start`] until they end here.
    held: Mutex<HashMap<OutputId, Held>>,
    /// The advisory locks of the runs executing here.
    locks: RunLocks,
    /// Stops the lease keeper when the runner goes.
    _leases: DropGuard,
}

/// A run this process holds.
struct Held {
    org: OrgId,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How often streamed text is published, at most.
const PARTIAL_EVERY: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain maps behind,
    // still consistent: keep going rather than poison every later run.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a run whose lease expired is failed.
const INTERRUPTED: &str = "interrupted: the gateway running it stopped";

impl Runner {
    /// How often the lease of every run held here is renewed.
    pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(15);
    /// How often runs whose lease expired are looked for.
    pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
    /// A run whose lease was last renewed this long ago is failed. Four
    /// renewals long, so that a slow database or a busy process does not
    /// lose its runs.
    pub const LEASE_STALE_AFTER: Duration = Duration::from_secs(60);

    /// A runner over `db`. Within a Tokio runtime it keeps leases and looks
    /// for expired ones in the background until it is dropped.
    pub fn new(db: Db, config: RunnerConfig) -> Arc<Self> {
        let stop = CancellationToken::new();
        let runner = Arc::new(Self {
            locks: RunLocks::new(db.clone()),
            db,
            overall: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            per_org: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            _leases: stop.clone().drop_guard(),
        });
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(keep_leases(Arc::downgrade(&runner), stop));
            }
            Err(_) => tracing::warn!(
                "no async runtime: this runner keeps no leases, and other gateways will fail its runs"
            ),
        }
        runner
    }

    /// The monthly token quota, if any.
    pub fn monthly_token_quota(&self) -> Option<u64> {
        self.config.monthly_token_quota
    }

    /// Fails the runs a stopped process left unfinished, sparing runs other
    /// gateways hold; returns how many. Call once at start; the runner then
    /// fails expired leases every [`Runner::SWEEP_EVERY`] by itself.
    ///
    /// A RUNNING run is executed only while its executor holds the run's
    /// advisory lock on a database connection, which goes when its process
    /// does: a RUNNING run whose lock is free is failed now, however
    /// recently its lease was renewed (a quick restart). QUEUED runs, which
    /// hold no lock between their commit and their start, and runs whose
    /// lock is free only because a replica's lock connection broke for a
    /// moment, wait for their lease to expire instead.
    pub async fn recover(&self) -> Result<u64, DomainError> {
        let held: Vec<OutputId> = lock(&self.held).keys().copied().collect();
        let orphaned = maintenance::fail_orphaned(&self.db, INTERRUPTED, &held).await?;
        for (org, id) in &orphaned {
            tracing::warn!(
                run.id = %id,
                tenant.org_id = %org,
                "agent run failed: the gateway running it stopped"
            );
        }
        Ok(orphaned.len() as u64 + self.sweep().await?.len() as u64)
    }

    /// Renews the lease of every run held here.
    async fn renew_leases(&self) -> Result<u64, DomainError> {
        let held: Vec<(OrgId, OutputId)> = lock(&self.held)
            .iter()
            .map(|(id, held)| (held.org, *id))
            .collect();
        maintenance::renew_leases(&self.db, &held).await
    }

    /// Fails the runs whose lease expired, except those held here.
    async fn sweep(&self) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
        let held: Vec<OutputId> = lock(&self.held).keys().copied().collect();
        let failed =
            maintenance::fail_stale(&self.db, INTERRUPTED, Self::LEASE_STALE_AFTER, &held).await?;
        for (org, id) in &failed {
            tracing::warn!(
                run.id = %id,
                tenant.org_id = %org,
                "agent run failed: its lease expired, the gateway running it stopped"
            );
        }
        Ok(failed)
    }

    /// Listens to a run's changes (whether or not it runs here).
    pub fn subscribe(&self, id: OutputId) -> broadcast::Receiver<RunEvent> {
        lock(&self.channels)
            .entry(id)
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// Drops a run's channel once nobody listens and nothing runs it; a
    /// listener calls it when it stops listening.
    pub fn release(&self, id: OutputId) {
        let running = lock(&self.held).contains_key(&id);
        let mut channels = lock(&self.channels);
        if !running && channels.get(&id).is_some_and(|c| c.receiver_count() == 0) {
            channels.remove(&id);
        }
    }

    fn publish(&self, run: &AgentRun, partial: Option<Arc<str>>) {
        if let Some(tx) = lock(&self.channels).get(&run.id) {
            let _ = tx.send(RunEvent {
                run: run.clone(),
                partial,
            });
        }
    }

    /// Stops a run executing here, if it is (its row is already CANCELLED).
    pub fn cancel(&self, id: OutputId) {
        if let Some(held) = lock(&self.held).get(&id) {
            held.cancel.cancel();
        }
    }

    /// Executes a queued run in the background, as `ctx`.
    pub fn start(self: &Arc<Self>, ctx: VerifiedContext, run: AgentRun) {
        let cancel = CancellationToken::new();
        lock(&self.held).insert(
            run.id,
            Held {
                org: ctx.org_id(),
                cancel: cancel.clone(),
            },
        );
        lock(&self.channels)
            .entry(run.id)
            .or_insert_with(|| broadcast::channel(64).0);
        let runner = self.clone();
        let org = ctx.org_id();
        metrics::gauge!("strata_agent_runs_in_flight").increment(1.0);
        // A child of the request that queued the run (for traces).
        let span = tracing::trace_span!(
            "agent.run",
            otel.name = %format_args!("agent.run {}", run.agent.as_str()),
            agent.kind = run.agent.as_str(),
            run.id = %run.id,
            tenant.org_id = %org,
        );
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let id = run.id;
                runner.execute(ctx, run, cancel).await;
                runner.locks.release(id).await;
                lock(&runner.held).remove(&id);
                runner.prune_org(org);
                runner.release(id);
                metrics::gauge!("strata_agent_runs_in_flight").decrement(1.0);
            },
            span,
        ));
    }

    fn org_semaphore(&self, org: OrgId) -> Arc<Semaphore> {
        lock(&self.per_org)
            .entry(org)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_per_org.max(1))))
            .clone()
    }

    /// Forgets an organization's semaphore once no run waits for it or
    /// holds it (each holds a clone while it waits and runs), so that the
    /// map does not grow with every organization that ever ran an agent.
    fn prune_org(&self, org: OrgId) {
        let mut map = lock(&self.per_org);
        if map.get(&org).is_some_and(|s| Arc::strong_count(s) == 1) {
            map.remove(&org);
        }
    }

    async fn execute(&self, ctx: VerifiedContext, run: AgentRun, cancel: CancellationToken) {
        let org_slots = self.org_semaphore(ctx.org_id());
        let waited = tokio::select! {
            // The organization's slot first: runs waiting for their own
            // organization must not hold the slots other tenants need.
            permits = async {
                let org = org_slots.acquire_owned().await;
                let overall = self.overall.clone().acquire_owned().await;
                (overall, org)
            } => Some(permits),
            () = cancel.cancelled() => None,
        };
        let Some((Ok(_overall), Ok(_org))) = waited else {
            return;
        };
        let id = run.id;
        // Locked before it is RUNNING, so that a gateway starting meanwhile
        // knows it is executed (see `recover`).
        if let Err(e) = self.locks.hold(id).await {
            tracing::warn!(run.id = %id, error = %e, "agent run could not be locked");
            self.finish(&ctx, id, Err("the database was unavailable".into()), 0, 0)
                .await;
            return;
        }
        let started = match self.begin(&ctx, &run).await {
            Ok(Some(started)) => started,
            Ok(None) => return, // cancelled while queued
            Err(e) => {
                tracing::error!(run.id = %id, error = %e, "agent run could not start");
                self.finish(
                    &ctx,
                    id,
                    Err("INTERNAL: the run could not start".into()),
                    0,
                    0,
                )
                .await;
                return;
            }
        };
        let (run_row, agent_context) = started;
        self.publish(&run_row, None);
        let agent_context = match agent_context {
            Ok(c) => c,
            Err(e) => {
                self.finish(&ctx, id, Err(e.public_reason()), 0, 0).await;
                return;
            }
        };
        let Ok(kind) = run_row.agent.parse::<AgentKind>() else {
            self.finish(&ctx, id, Err("unknown agent".into()), 0, 0)
                .await;
            return;
        };

        // Stream the model's text to subscribers while the agent runs: the
        // first piece at once, then at most every PARTIAL_EVERY, and all of
        // it once the stream ends (before the final status), so that even
        // a fast answer is seen streaming.
        let (sink, mut deltas) = DeltaSink::channel(256);
        let streamed = {
            let mut text = String::new();
            let mut last: Option<Instant> = None;
            let mut published = 0usize;
            let run_row = run_row.clone();
            let agent = async {
                let result = run_agent(
                    self.config.provider.as_ref(),
                    kind,
                    &agent_context,
                    self.config.model.as_deref(),
                    &sink,
                    &cancel,
                )
                .await;
                drop(sink);
                result
            };
            let forward = async {
                while let Some(delta) = deltas.recv().await {
                    text.push_str(&delta);
                    if last.is_none_or(|at| at.elapsed() >= PARTIAL_EVERY) {
                        last = Some(Instant::now());
                        published = text.len();
                        self.publish(&run_row, Some(Arc::from(text.as_str())));
                    }
                }
                if text.len() > published {
                    self.publish(&run_row, Some(Arc::from(text.as_str())));
                }
            };
            let (result, ()) = tokio::join!(agent, forward);
            result
        };
        match streamed {
            Ok(done) => {
                self.finish(
                    &ctx,
                    id,
                    Ok(done.value),
                    done.usage.prompt_tokens,
                    done.usage.completion_tokens,
                )
                .await;
            }
            Err(strata_agents::AgentError::Cancelled) => {
                // The row was set CANCELLED by cancelAgentRun; just make sure.
                self.finish_as(
                    &ctx,
                    id,
                    RunStatus::Cancelled,
                    None,
                    Some("cancelled on request".into()),
                    0,
                    0,
                )
                .await;
            }
            Err(e) => {
                // The provider's own words go to the operator's log only.
                tracing::warn!(run.id = %id, code = e.code(), error = %e, "agent run failed");
                // An answer that came but was refused was still billed by
                // the provider: its tokens stay with the run and count.
                let billed = e.billed_usage().unwrap_or_default();
                self.finish(
                    &ctx,
                    id,
                    Err(e.public_reason()),
                    billed.prompt_tokens,
                    billed.completion_tokens,
                )
                .await;
            }
        }
    }

    /// Marks the run RUNNING and reads what its agent may know, in one
    /// tenant transaction. `None` when the run was cancelled meanwhile; the
    /// context is an error when the records cannot make a prompt (a field
    /// beyond the agents' bounds), which fails the run with that reason.
    async fn begin(
        &self,
        ctx: &VerifiedContext,
        run: &AgentRun,
    ) -> Result<Option<(AgentRun, Result<AgentContext, strata_agents::AgentError>)>, DomainError>
    {
        let tx = TenantTx::begin(&self.db, ctx).await?;
        let result = async {
            let Some(started) = outputs::transition(&tx, run.id, Transition::Start).await? else {
                return Ok(None);
            };
            let org = organizations::current(&tx).await?;
            let campaign = campaigns::by_id(&tx, run.campaign_id)
                .await?
                .ok_or(DomainError::NotFound)?;
            let client = match campaign.client_id {
                Some(c) => Some(clients::by_id(&tx, c).await?.ok_or(DomainError::NotFound)?),
                None => None,
            };
            let guidelines = brand::get(&tx, campaign.client_id).await?;
            let page = PageRequest {
                limit: 20,
                ..Default::default()
            };
            let personas = personas::list(
                &tx,
                &personas::PersonaFilter {
                    client_id: campaign.client_id,
                    ..Default::default()
                },
                &page,
            )
            .await?
            .items;
            let instructions = run
                .input
                .get("instructions")
                .and_then(|i| i.as_str())
                .map(str::to_owned);
            // A run's typed input was validated when it was queued; reading
            // it back fails the run only if the row was changed since.
            let agent_context = run
                .agent
                .parse::<AgentKind>()
                .map_err(|_| strata_agents::InputError {
                    field: "agent".to_owned(),
                    problem: "names no agent".to_owned(),
                })
                .and_then(|kind| AgentInput::from_stored(kind, &run.input))
                .and_then(|input| {
                    AgentContext::from_records(
                        &org,
                        client.as_ref(),
                        &campaign,
                        guidelines.as_ref(),
                        &personas,
                        instructions.as_deref(),
                    )
                    .map(|context| context.with_input(input))
                })
                .map_err(strata_agents::AgentError::InvalidInput);
            Ok(Some((started, agent_context)))
        }
        .await;
        match result {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn finish(
        &self,
        ctx: &VerifiedContext,
        id: OutputId,
        outcome: Result<serde_json::Value, String>,
        prompt_tokens: u32,
        completion_tokens: u32,
    ) {
        let (status, output, error) = match outcome {
            Ok(v) => (RunStatus::Succeeded, Some(v), None),
            Err(e) => (RunStatus::Failed, None, Some(e)),
        };
        self.finish_as(
            ctx,
            id,
            status,
            output,
            error,
            prompt_tokens,
            completion_tokens,
        )
        .await;
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per outcome, all fields named"
    )]
    async fn finish_as(
        &self,
        ctx: &VerifiedContext,
        id: OutputId,
        status: RunStatus,
        output: Option<serde_json::Value>,
        error: Option<String>,
        prompt_tokens: u32,
        completion_tokens: u32,
    ) {
        let result = async {
            let tx = TenantTx::begin(&self.db, ctx).await?;
            let done = async {
                let ended = outputs::transition(
                    &tx,
                    id,
                    Transition::Finish {
                        status,
                        output,
                        error,
                        prompt_tokens,
                        completion_tokens,
                    },
                )
                .await?;
                // The tokens of a run this call ended count toward the
                // quota: a succeeded run's, and a failed run's when the
                // provider answered (a refused answer was billed; a run
                // that got no answer has none). An answer arriving after a
                // cancellation is dropped with its tokens.
                let tokens = u64::from(prompt_tokens) + u64::from(completion_tokens);
                if tokens > 0
                    && let Some(run) = &ended
                    && matches!(run.status, RunStatus::Succeeded | RunStatus::Failed)
                {
                    usage::record(&tx, tokens).await?;
                }
                match ended {
                    Some(run) => Ok(run),
                    // Already ended (cancelled): report it as it is.
                    None => outputs::by_id(&tx, id).await?.ok_or(DomainError::NotFound),
                }
            }
            .await;
            match done {
                Ok(run) => {
                    tx.commit().await?;
                    Ok(run)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        }
        .await;
        match result {
            Ok(run) => {
                metrics_for(&run);
                self.publish(&run, None);
            }
            Err(e) => {
                tracing::error!(run.id = %id, error = %e, detail = ?e, "agent run could not be stored")
            }
        }
    }
}

/// Renews the leases of `runner`'s runs every [`Runner::LEASE_RENEW_EVERY`]
/// and fails expired ones every [`Runner::SWEEP_EVERY`], until `stop` fires
/// or the runner is gone. Failures are logged and tried again next time.
async fn keep_leases(runner: Weak<Runner>, stop: CancellationToken) {
    let start = tokio::time::Instant::now();
    let mut renew =
        tokio::time::interval_at(start + Runner::LEASE_RENEW_EVERY, Runner::LEASE_RENEW_EVERY);
    let mut sweep = tokio::time::interval_at(start + Runner::SWEEP_EVERY, Runner::SWEEP_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sweeping = tokio::select! {
            () = stop.cancelled() => return,
            _ = renew.tick() => false,
            _ = sweep.tick() => true,
        };
        let Some(runner) = runner.upgrade() else {
            return;
        };
        if sweeping {
            if let Err(e) = runner.sweep().await {
                tracing::warn!(error = %e, "cannot look for agent runs whose gateway stopped");
            }
        } else {
            match runner.renew_leases().await {
                Ok(n) => tracing::debug!(runs = n, "agent run leases renewed"),
                Err(e) => tracing::warn!(error = %e, "cannot renew the leases of agent runs"),
            }
        }
    }
}

fn metrics_for(run: &AgentRun) {
    let kind = run.agent.as_str().to_owned();
    metrics::counter!("strata_agent_runs_total", "kind" => kind.clone(), "status" => run.status.as_str().to_owned())
        .increment(1);
    for (direction, tokens) in [("in", run.prompt_tokens), ("out", run.completion_tokens)] {
        metrics::counter!("strata_agent_tokens_total", "kind" => kind.clone(), "direction" => direction)
            .increment(u64::from(tokens));
    }
    tracing::info!(
        run.id = %run.id,
        run.status = run.status.as_str(),
        agent.kind = run.agent.as_str(),
        usage.prompt_tokens = run.prompt_tokens,
        usage.completion_tokens = run.completion_tokens,
        "agent run ended"
    );
}
