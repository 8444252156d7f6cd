//! Agent runs and their outputs: `public.agent_outputs` for SMEs,
//! `tenant_b.outputs` for agencies. The two tables differ only by the
//! agency's `client_id`, so one set of statements serves both, written once
//! with the table and the client column filled in by organization type.
//!
//! Reads for many campaigns at once (a page of campaigns with their latest
//! outputs) are one statement: a `LATERAL` join over the campaign ids, each
//! side walking the `(org_id, campaign_id, created_at DESC, id DESC)` index
//! with its own `LIMIT`.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use strata_domain::model::{AgentRun, RunStatus, StoredJson};
use strata_domain::{
    CampaignId, ClientId, ClientScope, DomainError, OrgId, OrgType, OutputId, UserId,
};
use uuid::Uuid;

use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest, campaigns, require_write, uuid_array};
use crate::tx::{RequestTx, TenantTx};

#[derive(Debug, FromQueryResult)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    client_id: Option<Uuid>,
    campaign_id: Uuid,
    agent: String,
    status: String,
    input: serde_json::Value,
    /// As text: passed on without being parsed (see [`StoredJson`]).
    output: Option<String>,
    error: Option<String>,
    prompt_tokens: i32,
    completion_tokens: i32,
    created_by: Option<Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Row> for AgentRun {
    fn from(r: Row) -> Self {
        AgentRun {
            id: OutputId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            client_id: r.client_id.map(ClientId::from_uuid),
            campaign_id: CampaignId::from_uuid(r.campaign_id),
            agent: r.agent,
            // The table's CHECK admits only the known spellings.
            status: RunStatus::parse(&r.status).unwrap_or(RunStatus::Failed),
            input: r.input,
            output: r.output.and_then(StoredJson::from_text),
            error: r.error,
            prompt_tokens: u32::try_from(r.prompt_tokens).unwrap_or(0),
            completion_tokens: u32::try_from(r.completion_tokens).unwrap_or(0),
            created_by: r.created_by.map(UserId::from_uuid),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// The table and the client column of the context's organization type.
fn table(tx: &TenantTx) -> (&'static str, &'static str) {
    match tx.ctx().org_type() {
        OrgType::Sme => ("public.agent_outputs", "NULL::uuid AS client_id"),
        OrgType::Agency => ("tenant_b.outputs", "client_id"),
    }
}

const COLUMNS: &str = "org_id, id, campaign_id, agent, status, input, output::text AS output, error, \
     prompt_tokens, completion_tokens, created_by, created_at, started_at, finished_at";

/// Builds a statement's values and numbers its placeholders.
struct Params(Vec<Value>);

impl Params {
    fn new(tx: &TenantTx) -> Self {
        Self(vec![tx.ctx().org_id().as_uuid().into()])
    }

    /// Adds a value and returns its placeholder.
    fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }

    /// The client-scope condition for an account manager (RLS holds the
    /// same line; this keeps the plan narrow and the code honest).
    fn scope(&mut self, tx: &TenantTx, alias: &str) -> String {
        match (tx.ctx().org_type(), tx.ctx().clients()) {
            (OrgType::Agency, ClientScope::Only(ids)) => {
                let p = self.push(uuid_array(ids.iter().map(|c| c.as_uuid())));
                format!(" AND {alias}client_id = ANY({p}::uuid[])")
            }
            _ => String::new(),
        }
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, self.0)
    }
}

/// Runs by id (for loaders); invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[OutputId]) -> Result<Vec<AgentRun>, DomainError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (t, client) = table(tx);
    let mut p = Params::new(tx);
    let ids = p.push(uuid_array(ids.iter().map(|i| i.as_uuid())));
    let scope = p.scope(tx, "");
    let sql = format!(
        "SELECT {COLUMNS}, {client} FROM {t} WHERE org_id = $1 AND id = ANY({ids}::uuid[]){scope}"
    );
    let rows = Row::find_by_statement(p.statement(sql))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(rows.into_iter().map(AgentRun::from).collect())
}

/// A run by id, if visible.
pub async fn by_id(tx: &TenantTx, id: OutputId) -> Result<Option<AgentRun>, DomainError> {
    Ok(by_ids(tx, &[id]).await?.into_iter().next())
}

/// Which runs of a campaign to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunFilter {
    /// Only finished, validated outputs.
    Outputs,
    /// Every run, whatever its status.
    All,
}

/// A page of each campaign's runs, newest first, in one statement.
pub async fn pages_for_campaigns(
    tx: &TenantTx,
    campaign_ids: &[CampaignId],
    filter: RunFilter,
    page: &PageRequest,
) -> Result<HashMap<CampaignId, Page<AgentRun>>, DomainError> {
    let mut out: HashMap<CampaignId, Page<AgentRun>> = HashMap::new();
    if campaign_ids.is_empty() {
        return Ok(out);
    }
    let (t, client) = table(tx);
    let mut p = Params::new(tx);
    let ids = p.push(uuid_array(campaign_ids.iter().map(|c| c.as_uuid())));
    let status = match filter {
        RunFilter::Outputs => " AND o.status = 'SUCCEEDED'",
        RunFilter::All => "",
    };
    let after = match page.after {
        Some((at, id)) => {
            let at = p.push(at);
            let id = p.push(id);
            format!(" AND (o.created_at, o.id) < ({at}, {id})")
        }
        None => String::new(),
    };
    let scope = p.scope(tx, "o.");
    let limit = p.push(i64::try_from(page.limit + 1).unwrap_or(i64::MAX));
    let cols = COLUMNS
        .split(", ")
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let client = if client == "client_id" {
        "o.client_id".to_owned()
    } else {
        client.to_owned()
    };
    let sql = format!(
        "SELECT {cols}, {client} FROM unnest({ids}::uuid[]) AS c(id) \
         CROSS JOIN LATERAL (SELECT * FROM {t} o WHERE o.org_id = $1 AND o.campaign_id = c.id\
         {status}{after}{scope} ORDER BY o.created_at DESC, o.id DESC LIMIT {limit}) o"
    );
    let rows = Row::find_by_statement(p.statement(sql))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    for row in rows {
        let run = AgentRun::from(row);
        out.entry(run.campaign_id)
            .or_insert_with(|| Page {
                items: Vec::new(),
                has_next_page: false,
            })
            .items
            .push(run);
    }
    for page_of in out.values_mut() {
        if page_of.items.len() as u64 > page.limit {
            page_of.items.truncate(page.limit as usize);
            page_of.has_next_page = true;
        }
    }
    Ok(out)
}

/// How many runs each campaign has, in one statement.
pub async fn counts_for_campaigns(
    tx: &TenantTx,
    campaign_ids: &[CampaignId],
    filter: RunFilter,
) -> Result<HashMap<CampaignId, u64>, DomainError> {
    if campaign_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (t, _) = table(tx);
    let mut p = Params::new(tx);
    let ids = p.push(uuid_array(campaign_ids.iter().map(|c| c.as_uuid())));
    let status = match filter {
        RunFilter::Outputs => " AND status = 'SUCCEEDED'",
        RunFilter::All => "",
    };
    let scope = p.scope(tx, "");
    let sql = format!(
        "SELECT campaign_id, count(*) AS n FROM {t} WHERE org_id = $1 \
         AND campaign_id = ANY({ids}::uuid[]){status}{scope} GROUP BY campaign_id"
    );
    #[derive(FromQueryResult)]
    struct Count {
        campaign_id: Uuid,
        n: i64,
    }
    let rows = Count::find_by_statement(p.statement(sql))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(rows
        .into_iter()
        .map(|r| (CampaignId::from_uuid(r.campaign_id), r.n.max(0) as u64))
        .collect())
}

/// A run to start.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The campaign it is for.
    pub campaign_id: CampaignId,
    /// The agent (`BUSINESS_STRATEGY`, ...).
    pub agent: &'static str,
    /// What was asked (instructions and options; never secrets).
    pub input: serde_json::Value,
}

/// Queues a run for a visible campaign and writes its audit row.
pub async fn create(tx: &TenantTx, new: NewRun) -> Result<AgentRun, DomainError> {
    require_write(tx, "this role cannot run agents")?;
    let campaign = campaigns::by_id(tx, new.campaign_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let id = OutputId::generate();
    let (t, _) = table(tx);
    let mut p = Params::new(tx);
    let id_p = p.push(id.as_uuid());
    let campaign_p = p.push(campaign.id.as_uuid());
    let agent_p = p.push(new.agent);
    let input_p = p.push(new.input.clone());
    let by_p = p.push(tx.ctx().actor().user_id().map(|u| u.as_uuid()));
    let (client_col, client_val) = match campaign.client_id {
        Some(c) => (", client_id", format!(", {}", p.push(c.as_uuid()))),
        None => ("", String::new()),
    };
    let sql = format!(
        "INSERT INTO {t} (org_id, id, campaign_id, agent, input, created_by{client_col}) \
         VALUES ($1, {id_p}, {campaign_p}, {agent_p}, {input_p}, {by_p}{client_val})"
    );
    tx.execute_raw(p.statement(sql)).await.map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            operation: "runAgent",
            target_type: "AgentRun",
            target_id: Some(id.as_uuid()),
            client_id: campaign.client_id,
            details: serde_json::json!({ "agent": new.agent, "campaignId": campaign.id.to_string() }),
        },
    )
    .await?;
    by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

/// How a run moves on.
#[derive(Clone, Debug)]
pub enum Transition {
    /// A worker picked it up.
    Start,
    /// It ended.
    Finish {
        /// SUCCEEDED, FAILED or CANCELLED.
        status: RunStatus,
        /// The validated output (SUCCEEDED only).
        output: Option<serde_json::Value>,
        /// Why it did not succeed.
        error: Option<String>,
        /// Prompt tokens used.
        prompt_tokens: u32,
        /// Completion tokens used.
        completion_tokens: u32,
    },
}

/// Moves a run on, if it has not ended yet; returns the run as it now is,
/// or `None` if it was not visible or had already ended (a cancelled run is
/// never overwritten by a late result).
pub async fn transition(
    tx: &TenantTx,
    id: OutputId,
    to: Transition,
) -> Result<Option<AgentRun>, DomainError> {
    let (t, _) = table(tx);
    let mut p = Params::new(tx);
    let id_p = p.push(id.as_uuid());
    let set = match to {
        // Starting renews the run's lease too (see `renew_leases`).
        Transition::Start => {
            "status = 'RUNNING', started_at = now(), heartbeat_at = now()".to_owned()
        }
        Transition::Finish {
            status,
            output,
            error,
            prompt_tokens,
            completion_tokens,
        } => {
            let status = p.push(status.as_str());
            let output = p.push(output);
            let error = p.push(error);
            let pt = p.push(i32::try_from(prompt_tokens).unwrap_or(i32::MAX));
            let ct = p.push(i32::try_from(completion_tokens).unwrap_or(i32::MAX));
            format!(
                "status = {status}, output = {output}, error = {error}, prompt_tokens = {pt}, \
                 completion_tokens = {ct}, finished_at = now(), \
                 started_at = coalesce(started_at, now())"
            )
        }
    };
    let sql = format!(
        "UPDATE {t} SET {set} WHERE org_id = $1 AND id = {id_p} \
         AND status IN ('QUEUED', 'RUNNING')"
    );
    let done = tx.execute_raw(p.statement(sql)).await.map_err(map_db_err)?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    by_id(tx, id).await
}

/// Cancels a run that has not ended, writing the audit row; a run that
/// already ended is returned unchanged.
pub async fn cancel(tx: &TenantTx, id: OutputId) -> Result<AgentRun, DomainError> {
    require_write(tx, "this role cannot cancel agent runs")?;
    let run = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    if run.status.is_terminal() {
        return Ok(run);
    }
    let cancelled = transition(
        tx,
        id,
        Transition::Finish {
            status: RunStatus::Cancelled,
            output: None,
            error: Some("cancelled on request".to_owned()),
            prompt_tokens: run.prompt_tokens,
            completion_tokens: run.completion_tokens,
        },
    )
    .await?;
    audit::record(
        tx,
        AuditEntry {
            operation: "cancelAgentRun",
            target_type: "AgentRun",
            target_id: Some(id.as_uuid()),
            client_id: run.client_id,
            details: serde_json::json!({}),
        },
    )
    .await?;
    match cancelled {
        Some(r) => Ok(r),
        None => by_id(tx, id).await?.ok_or(DomainError::NotFound),
    }
}

/// How many of the organization's runs are QUEUED or RUNNING, whenever
/// queued (their tokens will count in the month they end): all of them,
/// whatever the context's client scope, because the quota is the
/// organization's. The one counting statement runs as `app_maint`, which
/// sees nothing of a run but its organization, id, status and times,
/// filtered by the context's organization; the transaction is back in its
/// runtime role right after.
pub async fn unfinished(tx: &TenantTx) -> Result<u64, DomainError> {
    let (t, _) = table(tx);
    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
    tx.execute_unprepared("SET LOCAL ROLE app_maint")
        .await
        .map_err(map_db_err)?;
    let counted = Count::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT count(*) AS n FROM {t} WHERE org_id = $1 AND status IN ('QUEUED', 'RUNNING')"
        ),
        [tx.ctx().org_id().as_uuid().into()],
    ))
    .one(tx)
    .await
    .map_err(map_db_err)?;
    tx.execute_unprepared(&format!(
        "SET LOCAL ROLE {}",
        crate::tx::runtime_role(tx.ctx().org_type())
    ))
    .await
    .map_err(map_db_err)?;
    Ok(counted.map_or(0, |c| c.n.max(0) as u64))
}

/// Tokens the organization used since `since` (for the monthly quota).
pub async fn tokens_used_since(
    tx: &TenantTx,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DomainError> {
    let (t, _) = table(tx);
    let mut p = Params::new(tx);
    let since = p.push(since);
    let sql = format!(
        "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint AS n \
         FROM {t} WHERE org_id = $1 AND created_at >= {since}"
    );
    #[derive(FromQueryResult)]
    struct Sum {
        n: i64,
    }
    let sum = Sum::find_by_statement(p.statement(sql))
        .one(tx)
        .await
        .map_err(map_db_err)?;
    Ok(sum.map(|s| s.n.max(0) as u64).unwrap_or(0))
}

/// Renews the lease of runs this process holds (queued in its memory or
/// executing), in both tables at once, as the narrow `app_lease` role: it
/// sees only `org_id` and `id` of unfinished runs and may only set their
/// `heartbeat_at` to `now()`. Rows another transaction is changing right now
/// (a run ending, a cancellation) are skipped rather than waited for; the
/// next renewal catches them. Returns how many leases were renewed.
pub async fn renew_leases(db: &crate::Db, held: &[(OrgId, OutputId)]) -> Result<u64, DomainError> {
    if held.is_empty() {
        return Ok(0);
    }
    let orgs = uuid_array(held.iter().map(|(org, _)| org.as_uuid()));
    let ids = uuid_array(held.iter().map(|(_, id)| id.as_uuid()));
    let renew = |table: &str, name: &str| {
        format!(
            "{name}_rows AS (SELECT o.org_id, o.id FROM {table} o \
             JOIN held h ON o.org_id = h.org_id AND o.id = h.id FOR UPDATE OF o SKIP LOCKED), \
             {name} AS (UPDATE {table} o SET heartbeat_at = now() FROM {name}_rows r \
             WHERE o.org_id = r.org_id AND o.id = r.id RETURNING o.id)"
        )
    };
    let sql = format!(
        "WITH held AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS h(org_id, id)), {}, {} \
         SELECT count(*) AS n FROM (SELECT id FROM sme UNION ALL SELECT id FROM agency) r",
        renew("public.agent_outputs", "sme"),
        renew("tenant_b.outputs", "agency"),
    );
    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
    let renewed = as_role(db, "app_lease", |txn| async move {
        Count::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [orgs.into(), ids.into()],
        ))
        .one(&txn)
        .await
        .map(|c| (txn, c))
    })
    .await?;
    Ok(renewed.map_or(0, |c| c.n.max(0) as u64))
}

/// Fails every QUEUED or RUNNING run whose lease
/// (`coalesce(heartbeat_at, started_at, created_at)`) is at least
/// `stale_after` old, except those in `held`, in both tables at once, with
/// `reason`. It runs as the narrow `app_maint` role, which sees nothing of
/// a run but its ids, status and times and may only set an unfinished run
/// FAILED. Rows another transaction is changing right now are skipped.
/// Returns the runs it failed.
pub async fn fail_stale(
    db: &crate::Db,
    reason: &str,
    stale_after: std::time::Duration,
    held: &[OutputId],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let held = uuid_array(held.iter().map(|id| id.as_uuid()));
    let fail = |table: &str, name: &str| {
        format!(
            "{name}_rows AS (SELECT org_id, id FROM {table} \
             WHERE status IN ('QUEUED', 'RUNNING') \
             AND coalesce(heartbeat_at, started_at, created_at) <= now() - make_interval(secs => $2) \
             AND id <> ALL ($3::uuid[]) FOR UPDATE SKIP LOCKED), \
             {name} AS (UPDATE {table} o SET status = 'FAILED', error = $1, finished_at = now() \
             FROM {name}_rows r WHERE o.org_id = r.org_id AND o.id = r.id \
             RETURNING o.org_id, o.id)"
        )
    };
    let values = [reason.into(), stale_after.as_secs_f64().into(), held.into()];
    fail_in_both_tables(db, fail, values).await
}

/// The class of the advisory locks that mark runs being executed (the first
/// key of PostgreSQL's two-key advisory locks, so that they cannot meet
/// locks other code takes with one key).
pub const RUN_LOCK_CLASS: i32 = 0x5352_554e;

/// The second key of a run's advisory lock: the last four bytes of its id.
/// Two runs may share one; that only delays failing one of them, because a
/// lock someone holds spares its runs.
pub fn run_lock_key(id: OutputId) -> i32 {
    let b = id.as_uuid().into_bytes();
    i32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

/// The same key computed by the database from a run's `id`.
const SQL_LOCK_KEY: &str = "('x' || right(replace(id::text, '-', ''), 8))::bit(32)::int";

/// Session-level advisory locks, on one connection of the pool, marking the
/// runs this process executes: a run is RUNNING only while its executor
/// holds its lock, and the lock goes with the executor's connection when the
/// process stops, however it stops. [`fail_orphaned`] fails the RUNNING runs
/// whose lock nobody holds. The connection is taken while at least one run
/// is held and goes back to the pool, its locks released, when none is.
///
/// Behind a pooler in transaction mode a session outlives nothing but a
/// transaction: the connection then stays inside a transaction while it
/// holds locks (an idle one, holding no snapshot), which keeps the pooler
/// from handing its server session to anyone else, and commits once the
/// last lock is released.
#[derive(Debug)]
pub struct RunLocks {
    db: crate::Db,
    state: tokio::sync::Mutex<LockState>,
}

#[derive(Debug, Default)]
struct LockState {
    conn: Option<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>>,
    held: std::collections::HashSet<OutputId>,
}

impl RunLocks {
    /// No locks yet, over `db`'s pool.
    pub fn new(db: crate::Db) -> Self {
        Self {
            db,
            state: tokio::sync::Mutex::new(LockState::default()),
        }
    }

    /// Takes run `id`'s lock (waiting while a sweep looks at it). On a
    /// connection newly taken, every run held is locked again.
    pub async fn hold(&self, id: OutputId) -> Result<(), DomainError> {
        let mut state = self.state.lock().await;
        state.held.insert(id);
        let ids: Vec<OutputId> = match state.conn {
            Some(_) => vec![id],
            None => {
                let mut conn = self.db.pool().acquire().await.map_err(lock_err)?;
                if self.db.transaction_pooling() {
                    crate::tx::begin_plain(&mut conn).await.map_err(lock_err)?;
                    // The transaction stays open while runs execute: a
                    // server-wide idle-in-transaction timeout must not end
                    // it (and with it the locks that spare these runs).
                    sea_orm::sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(lock_err)?;
                }
                state.conn = Some(conn);
                state.held.iter().copied().collect()
            }
        };
        let keys: Vec<i32> = ids.into_iter().map(run_lock_key).collect();
        let Some(conn) = state.conn.as_mut() else {
            return Ok(());
        };
        let locked =
            sea_orm::sqlx::query("SELECT pg_advisory_lock($1, k) FROM unnest($2::int[]) AS k")
                .bind(RUN_LOCK_CLASS)
                .bind(keys)
                .persistent(!self.db.transaction_pooling())
                .execute(&mut **conn)
                .await;
        if let Err(e) = locked {
            // A broken connection lost its locks: the next call starts over.
            if let Some(conn) = state.conn.take() {
                let _ = conn.close().await;
            }
            return Err(lock_err(e));
        }
        Ok(())
    }

    /// Releases run `id`'s lock; with no run left, the connection too.
    pub async fn release(&self, id: OutputId) {
        let mut state = self.state.lock().await;
        if !state.held.remove(&id) {
            return;
        }
        let empty = state.held.is_empty();
        let Some(conn) = state.conn.as_mut() else {
            return;
        };
        let sql = if empty {
            "SELECT pg_advisory_unlock_all()"
        } else {
            "SELECT pg_advisory_unlock($1, $2)"
        };
        let pooled = self.db.transaction_pooling();
        let mut done = sea_orm::sqlx::query(sql)
            .bind(RUN_LOCK_CLASS)
            .bind(run_lock_key(id))
            .persistent(!pooled)
            .execute(&mut **conn)
            .await;
        if empty && pooled && done.is_ok() {
            done = crate::tx::commit_plain(conn)
                .await
                .map(|()| Default::default());
        }
        match done {
            Ok(_) if empty => drop(state.conn.take()),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot release an agent run's lock; closing its connection");
                if let Some(conn) = state.conn.take() {
                    let _ = conn.close().await;
                }
                // The locks went with the connection; re-take the others'.
                drop(state);
                let rest: Vec<OutputId> = self.state.lock().await.held.drain().collect();
                for id in rest {
                    if let Err(e) = self.hold(id).await {
                        tracing::warn!(error = %e, "cannot re-take an agent run's lock");
                    }
                }
            }
        }
    }
}

fn lock_err(e: sea_orm::sqlx::Error) -> DomainError {
    map_db_err(crate::tx::query_err(e))
}

/// Fails every RUNNING run whose advisory lock (see [`RunLocks`]) nobody
/// holds, except those in `held`, in both tables at once, with `reason`:
/// the process executing it stopped, however recently it renewed its
/// lease. As the narrow `app_maint` role. Rows another transaction is
/// changing right now are skipped; the locks it takes to look are
/// transaction-level and go at its commit. Returns the runs it failed.
pub async fn fail_orphaned(
    db: &crate::Db,
    reason: &str,
    held: &[OutputId],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let held = uuid_array(held.iter().map(|id| id.as_uuid()));
    let fail = |table: &str, name: &str| {
        format!(
            "{name}_rows AS MATERIALIZED (SELECT org_id, id FROM {table} \
             WHERE status = 'RUNNING' AND id <> ALL ($2::uuid[]) FOR UPDATE SKIP LOCKED), \
             {name}_free AS MATERIALIZED (SELECT org_id, id FROM {name}_rows \
             WHERE pg_try_advisory_xact_lock($3, {SQL_LOCK_KEY})), \
             {name} AS (UPDATE {table} o SET status = 'FAILED', error = $1, finished_at = now() \
             FROM {name}_free r WHERE o.org_id = r.org_id AND o.id = r.id \
             AND o.status = 'RUNNING' RETURNING o.org_id, o.id)"
        )
    };
    let values = [reason.into(), held.into(), RUN_LOCK_CLASS.into()];
    fail_in_both_tables(db, fail, values).await
}

/// Runs, as `app_maint`, the failing statement `fail(table, name)` builds
/// for each run table (a CTE named `name` returning the failed runs' ids)
/// with `values`, and returns the runs failed in both.
async fn fail_in_both_tables(
    db: &crate::Db,
    fail: impl Fn(&str, &str) -> String,
    values: [Value; 3],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let sql = format!(
        "WITH {}, {} SELECT org_id, id FROM sme UNION ALL SELECT org_id, id FROM agency",
        fail("public.agent_outputs", "sme"),
        fail("tenant_b.outputs", "agency"),
    );
    #[derive(FromQueryResult)]
    struct Failed {
        org_id: Uuid,
        id: Uuid,
    }
    let failed = as_role(db, "app_maint", |txn| async move {
        Failed::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .all(&txn)
        .await
        .map(|rows| (txn, rows))
    })
    .await?;
    Ok(failed
        .into_iter()
        .map(|r| (OrgId::from_uuid(r.org_id), OutputId::from_uuid(r.id)))
        .collect())
}

/// Runs `work` in a transaction of its own as `role` (one of the narrow
/// maintenance roles, never a tenant's), and commits. The transaction opens
/// like a request's: `BEGIN` and the role in one message (the isolation
/// level set twice refuses a connection still inside a transaction).
async fn as_role<T, F, Fut>(db: &crate::Db, role: &'static str, work: F) -> Result<T, DomainError>
where
    F: FnOnce(RequestTx) -> Fut,
    Fut: std::future::Future<Output = Result<(RequestTx, T), sea_orm::DbErr>>,
{
    let message = format!(
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
         SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCAL ROLE {role}"
    );
    let txn = RequestTx::begin_with(db, message, false)
        .await
        .map_err(map_db_err)?;
    let (txn, out) = work(txn).await.map_err(map_db_err)?;
    txn.commit().await.map_err(map_db_err)?;
    Ok(out)
}
