//! Agent runs in the background.
//!
//! `runAgent` stores a QUEUED run (and its audit row) in the request's
//! transaction; once that commits, the server hands the run to the
//! [`Runner`], which executes it with bounded concurrency (overall and per
//! organization) under the tenant context of the user who asked: every read
//! and write of the run goes through a tenant transaction, RLS included.
//! Status changes and streamed text are published on a per-run channel that
//! `agentRun` subscriptions listen to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_agents::{AgentContext, AgentKind, DeltaSink, SharedProvider, run_agent};
use strata_domain::model::{AgentRun, RunStatus};
use strata_domain::{DomainError, OrgId, OutputId, TenantContext};
use strata_persistence::repo::outputs::{self, Transition};
use strata_persistence::repo::personas;
use strata_persistence::repo::{PageRequest, brand, campaigns, clients, organizations, usage};
use strata_persistence::{Db, TenantTx};
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

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
    cancels: Mutex<HashMap<OutputId, CancellationToken>>,
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

impl Runner {
    /// A runner over `db`.
    pub fn new(db: Db, config: RunnerConfig) -> Arc<Self> {
        Arc::new(Self {
            db,
            overall: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            per_org: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            cancels: Mutex::new(HashMap::new()),
        })
    }

    /// The monthly token quota, if any.
    pub fn monthly_token_quota(&self) -> Option<u64> {
        self.config.monthly_token_quota
    }

    /// Fails the runs a previous process left unfinished. Call once at start.
    pub async fn recover(&self) -> Result<u64, DomainError> {
        outputs::fail_interrupted(
            &self.db,
            "interrupted: the gateway restarted during the run",
        )
        .await
    }

    /// Listens to a run's changes (whether or not it runs here).
    pub fn subscribe(&self, id: OutputId) -> broadcast::Receiver<RunEvent> {
        lock(&self.channels)
            .entry(id)
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// Drops a run's channel once nobody listens and nothing runs it.
    pub(crate) fn release(&self, id: OutputId) {
        let running = lock(&self.cancels).contains_key(&id);
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
        if let Some(token) = lock(&self.cancels).get(&id) {
            token.cancel();
        }
    }

    /// Executes a queued run in the background, as `ctx`.
    pub fn start(self: &Arc<Self>, ctx: TenantContext, run: AgentRun) {
        let cancel = CancellationToken::new();
        lock(&self.cancels).insert(run.id, cancel.clone());
        lock(&self.channels)
            .entry(run.id)
            .or_insert_with(|| broadcast::channel(64).0);
        let runner = self.clone();
        tokio::spawn(async move {
            let id = run.id;
            runner.execute(ctx, run, cancel).await;
            lock(&runner.cancels).remove(&id);
            runner.release(id);
        });
    }

    fn org_semaphore(&self, org: OrgId) -> Arc<Semaphore> {
        lock(&self.per_org)
            .entry(org)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_per_org.max(1))))
            .clone()
    }

    async fn execute(&self, ctx: TenantContext, run: AgentRun, cancel: CancellationToken) {
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
        let started = match self.begin(&ctx, &run).await {
            Ok(Some(started)) => started,
            Ok(None) => return, // cancelled while queued
            Err(e) => {
                tracing::error!(run.id = %id, error = %e, "agent run could not start");
                self.finish(&ctx, id, Err(e.to_string()), 0, 0).await;
                return;
            }
        };
        let (run_row, agent_context) = started;
        self.publish(&run_row, None);
        let Ok(kind) = run_row.agent.parse::<AgentKind>() else {
            self.finish(&ctx, id, Err("unknown agent".into()), 0, 0)
                .await;
            return;
        };

        // Stream the model's text to subscribers, at most every
        // PARTIAL_EVERY, while the agent runs.
        let (sink, mut deltas) = DeltaSink::channel(256);
        let streamed = {
            let mut text = String::new();
            let mut last = Instant::now();
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
                    if last.elapsed() >= PARTIAL_EVERY {
                        last = Instant::now();
                        self.publish(&run_row, Some(Arc::from(text.as_str())));
                    }
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
                self.finish(&ctx, id, Err(e.to_string()), 0, 0).await;
            }
        }
    }

    /// Marks the run RUNNING and reads what its agent may know, in one
    /// tenant transaction. `None` when the run was cancelled meanwhile.
    async fn begin(
        &self,
        ctx: &TenantContext,
        run: &AgentRun,
    ) -> Result<Option<(AgentRun, AgentContext)>, DomainError> {
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
                after: None,
                limit: 20,
            };
            let personas = match campaign.client_id {
                Some(c) => personas::list(&tx, Some(c), &page).await?.items,
                None => personas::list(&tx, None, &page).await?.items,
            };
            let instructions = run
                .input
                .get("instructions")
                .and_then(|i| i.as_str())
                .map(str::to_owned);
            let agent_context = AgentContext::from_records(
                &org,
                client.as_ref(),
                &campaign,
                guidelines.as_ref(),
                &personas,
                instructions.as_deref(),
            )
            .map_err(|e| DomainError::Internal(Box::new(e)))?;
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
        ctx: &TenantContext,
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
        ctx: &TenantContext,
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
                // Only a run this call ended as SUCCEEDED counts toward the
                // quota: an answer arriving after a cancellation is dropped,
                // and a failed run stored nothing.
                let tokens = u64::from(prompt_tokens) + u64::from(completion_tokens);
                if tokens > 0
                    && let Some(run) = &ended
                    && run.status == RunStatus::Succeeded
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
            Err(e) => tracing::error!(run.id = %id, error = %e, "agent run could not be stored"),
        }
    }
}

fn metrics_for(run: &AgentRun) {
    tracing::info!(
        run.id = %run.id,
        run.status = run.status.as_str(),
        agent.kind = run.agent.as_str(),
        usage.prompt_tokens = run.prompt_tokens,
        usage.completion_tokens = run.completion_tokens,
        "agent run ended"
    );
}
