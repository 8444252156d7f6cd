//! The subscription root: `agentRun`, a run's state as it changes, from the
//! runner's events when the run executes in this process, and by reading
//! the run again when it does not.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, ID, Result, Subscription};
use strata_domain::model::RunStatus;
use strata_domain::{DomainError, OutputId};
use strata_persistence::context::VerifiedContext;
use strata_persistence::repo::outputs;
use strata_persistence::{Db, TenantTx};
use strata_runner::{RunEvent, Runner};
use tokio::sync::broadcast;

use crate::error::{ErrorCode, domain_error};
use crate::exports::DataExport;
use crate::runs::{AgentRun, runner};
use crate::state::RequestState;

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

impl Watch {
    /// Asks whether the caller may still act, and with which context; an
    /// `Err` ends the stream. Without a check (not on a WebSocket) the
    /// context stays the one the subscription started with.
    async fn recheck(&mut self) -> Result<()> {
        let Some(check) = &self.check else {
            return Ok(());
        };
        let ctx = check.current().await.ok_or_else(crate::limits::revoked)?;
        self.ctx = ctx;
        Ok(())
    }

    /// Reads the run with the caller's current context. On a WebSocket the
    /// caller first takes a turn (charged to its buckets, through its
    /// organization's gate), and only then is its credential checked again
    /// and the run read: a caller out of budget costs the database nothing.
    /// `Ok(None)` when it had to wait for a turn; `Ok(Some(None))` when the
    /// run is no longer visible; `Err` ends the stream.
    async fn poll(&mut self) -> Result<Option<Option<strata_domain::model::AgentRun>>> {
        let _turn = match &self.check {
            Some(check) => match check.turn().await {
                Some(turn) => Some(turn),
                None => return Ok(None),
            },
            None => None,
        };
        self.recheck().await?;
        read_run(&self.db, &self.ctx, self.id)
            .await
            .map(Some)
            .map_err(domain_error)
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
            match event {
                Some(Ok(ev)) => {
                    // Nothing goes out to a caller that may no longer act.
                    if let Err(e) = self.recheck().await {
                        self.done = true;
                        return Some(Err(e));
                    }
                    return Some(Ok(self.emit(ev.run, ev.partial)));
                }
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
                    return Some(Err(e));
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
        let id: OutputId = crate::global_id::run_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        let tenant = state.tenant()?.clone();
        let runner = runner(ctx)?.clone();
        // On a WebSocket, a slot among the connection's subscriptions, held
        // until the stream ends or is stopped.
        let session = ctx.data_opt::<crate::limits::SocketSession>();
        let check = session.and_then(crate::limits::SocketSession::check);
        let slot = crate::limits::subscription_slot(session)?;
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

    /// A data export's progress as it changes, until it is ready or
    /// failed (OWNER/ADMIN). The first event is the export as it is now.
    async fn data_export(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<DataExport>> + use<>> {
        crate::exports::follow(ctx, id).await
    }
}
