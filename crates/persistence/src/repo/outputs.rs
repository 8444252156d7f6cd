//! Agent runs and their outputs: `public.agent_outputs` for SMEs,
//! `tenant_b.outputs` for agencies. The two tables differ only by the
//! agency's `client_id`, so each tenant statement is written once over the
//! two-schema primitive, with typed columns, and runs on the copy of the
//! context's organization type.
//!
//! Reads for many campaigns at once (a page of campaigns with their latest
//! outputs) are one statement: a `LATERAL` join over the campaign ids, each
//! side walking the `(org_id, campaign_id, created_at DESC, id DESC)` index
//! with its own `LIMIT`.
//!
//! The lease maintenance (renewing leases, failing stale or orphaned runs)
//! stays raw SQL: it runs across tenants as narrow roles, over both tables in
//! one statement of `FOR UPDATE SKIP LOCKED` CTEs and advisory locks.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Asterisk, Expr, Func, JoinType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, Statement, Value,
};
use strata_domain::model::{AgentRun, Campaign, RunStatus, StoredJson};
use strata_domain::{CampaignId, ClientId, DomainError, OrgId, OutputId, UserId};
use uuid::Uuid;

use crate::entity::{public, tenant_b};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::two_schema::{InSchema, TwoSchemaTable, dispatch};
use crate::repo::{Page, PageRequest, any_of, campaigns, require_write, uuid_array};
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

/// The columns both copies of a run have.
#[derive(Clone, Copy, Debug)]
enum Runs {
    OrgId,
    Id,
    CampaignId,
    Agent,
    Status,
    Input,
    Output,
    Error,
    PromptTokens,
    CompletionTokens,
    CreatedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
    HeartbeatAt,
}

impl TwoSchemaTable for Runs {
    type Sme = public::agent_outputs::Entity;
    type Agency = tenant_b::outputs::Entity;
    const ORG_ID: Self = Self::OrgId;
}

impl InSchema<Runs> for public::agent_outputs::Entity {
    const CLIENT_ID: Option<Self::Column> = None;

    fn col(c: Runs) -> Self::Column {
        use public::agent_outputs::Column as C;
        match c {
            Runs::OrgId => C::OrgId,
            Runs::Id => C::Id,
            Runs::CampaignId => C::CampaignId,
            Runs::Agent => C::Agent,
            Runs::Status => C::Status,
            Runs::Input => C::Input,
            Runs::Output => C::Output,
            Runs::Error => C::Error,
            Runs::PromptTokens => C::PromptTokens,
            Runs::CompletionTokens => C::CompletionTokens,
            Runs::CreatedBy => C::CreatedBy,
            Runs::CreatedAt => C::CreatedAt,
            Runs::StartedAt => C::StartedAt,
            Runs::FinishedAt => C::FinishedAt,
            Runs::HeartbeatAt => C::HeartbeatAt,
        }
    }
}

impl InSchema<Runs> for tenant_b::outputs::Entity {
    const CLIENT_ID: Option<Self::Column> = Some(tenant_b::outputs::Column::ClientId);

    fn col(c: Runs) -> Self::Column {
        use tenant_b::outputs::Column as C;
        match c {
            Runs::OrgId => C::OrgId,
            Runs::Id => C::Id,
            Runs::CampaignId => C::CampaignId,
            Runs::Agent => C::Agent,
            Runs::Status => C::Status,
            Runs::Input => C::Input,
            Runs::Output => C::Output,
            Runs::Error => C::Error,
            Runs::PromptTokens => C::PromptTokens,
            Runs::CompletionTokens => C::CompletionTokens,
            Runs::CreatedBy => C::CreatedBy,
            Runs::CreatedAt => C::CreatedAt,
            Runs::StartedAt => C::StartedAt,
            Runs::FinishedAt => C::FinishedAt,
            Runs::HeartbeatAt => C::HeartbeatAt,
        }
    }
}

/// The columns a [`Row`] reads as they are (`output` is read as text,
/// `client_id` comes with [`InSchema::select`]).
const ROW: [Runs; 13] = [
    Runs::OrgId,
    Runs::Id,
    Runs::CampaignId,
    Runs::Agent,
    Runs::Status,
    Runs::Input,
    Runs::Error,
    Runs::PromptTokens,
    Runs::CompletionTokens,
    Runs::CreatedBy,
    Runs::CreatedAt,
    Runs::StartedAt,
    Runs::FinishedAt,
];

/// Selects a [`Row`] from the runs the context may see.
fn select<E: InSchema<Runs>>(tx: &TenantTx) -> Select<E> {
    use sea_orm::sea_query::ExprTrait as _;
    let output = E::col(Runs::Output);
    E::select(tx, &ROW).column_as(output.into_expr().cast_as("text"), output)
}

/// `status` is one of `statuses`, spelt as literals: the partial indexes on
/// unfinished runs match only a literal predicate.
fn status_in<E: InSchema<Runs>>(statuses: &[RunStatus]) -> Expr {
    use sea_orm::sea_query::ExprTrait as _;
    E::col(Runs::Status)
        .into_expr()
        .is_in(statuses.iter().map(|s| Expr::Constant(s.as_str().into())))
}

/// Runs not ended yet.
const UNFINISHED: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];

async fn by_ids_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    ids: &[OutputId],
) -> Result<Vec<AgentRun>, DbErr> {
    let rows = select::<E>(tx)
        .filter(any_of(E::col(Runs::Id), ids.iter().map(|i| i.as_uuid())))
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(rows.into_iter().map(AgentRun::from).collect())
}

/// Runs by id (for loaders); invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[OutputId]) -> Result<Vec<AgentRun>, DomainError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    dispatch!(tx, Runs, by_ids_in(tx, ids)).map_err(map_db_err)
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

impl RunFilter {
    /// The statuses it keeps, or `None` for all.
    fn statuses(self) -> Option<&'static [RunStatus]> {
        match self {
            RunFilter::Outputs => Some(&[RunStatus::Succeeded]),
            RunFilter::All => None,
        }
    }
}

/// The rows of [`pages_for_campaigns`]: for each campaign id (`unnest` of
/// one array parameter), a `LATERAL` subquery of its runs in the page,
/// newest first.
async fn pages_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    campaign_ids: &[CampaignId],
    filter: RunFilter,
    page: &PageRequest,
) -> Result<Vec<Row>, DbErr> {
    use sea_orm::sea_query::ExprTrait as _;
    let campaign = Alias::new("campaign");
    let mut runs = select::<E>(tx).filter(
        E::col(Runs::CampaignId)
            .into_expr()
            .eq(Expr::col((campaign.clone(), campaign.clone()))),
    );
    if let Some(statuses) = filter.statuses() {
        runs = runs.filter(status_in::<E>(statuses));
    }
    let (created_at, id) = (E::col(Runs::CreatedAt), E::col(Runs::Id));
    if let Some((at, after)) = page.after {
        // A row comparison: a bound of the index scan, not a filter.
        runs = runs.filter(
            Expr::tuple([created_at.into_expr(), id.into_expr()])
                .lt(Expr::tuple([Expr::value(at), Expr::value(after)])),
        );
    }
    let runs = runs
        .order_by_desc(created_at)
        .order_by_desc(id)
        .limit(page.limit + 1)
        .into_query();
    let ids = Expr::cust_with_values(
        "$1::uuid[]",
        [uuid_array(campaign_ids.iter().map(|c| c.as_uuid()))],
    );
    let run = Alias::new("run");
    let mut pages = Query::select();
    pages
        .column((run.clone(), Asterisk))
        .from_function(Func::cust("unnest").arg(ids), campaign)
        .join_lateral(JoinType::InnerJoin, runs, run, Expr::cust("TRUE"));
    Row::find_by_statement(tx.get_database_backend().build(&pages))
        .all(tx)
        .await
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
    let rows = dispatch!(tx, Runs, pages_in(tx, campaign_ids, filter, page)).map_err(map_db_err)?;
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

async fn counts_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    campaign_ids: &[CampaignId],
    filter: RunFilter,
) -> Result<HashMap<CampaignId, u64>, DbErr> {
    let campaign = E::col(Runs::CampaignId);
    let mut q = E::find()
        .select_only()
        .column(campaign)
        .column_as(Expr::cust("count(*)"), "n")
        .filter(E::in_scope(tx))
        .filter(any_of(campaign, campaign_ids.iter().map(|c| c.as_uuid())));
    if let Some(statuses) = filter.statuses() {
        q = q.filter(status_in::<E>(statuses));
    }
    let rows: Vec<(Uuid, i64)> = q.group_by(campaign).into_tuple().all(tx).await?;
    Ok(rows
        .into_iter()
        .map(|(c, n)| (CampaignId::from_uuid(c), n.max(0) as u64))
        .collect())
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
    dispatch!(tx, Runs, counts_in(tx, campaign_ids, filter)).map_err(map_db_err)
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

async fn insert_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    id: OutputId,
    campaign: &Campaign,
    new: &NewRun,
) -> Result<(), DbErr> {
    let insert = E::insert_row(
        tx,
        campaign.client_id,
        [
            (E::col(Runs::Id), id.as_uuid().into()),
            (E::col(Runs::CampaignId), campaign.id.as_uuid().into()),
            (E::col(Runs::Agent), new.agent.into()),
            (E::col(Runs::Input), new.input.clone().into()),
            (
                E::col(Runs::CreatedBy),
                tx.ctx().actor().user_id().map(|u| u.as_uuid()).into(),
            ),
        ],
    )?;
    tx.execute(&insert).await?;
    Ok(())
}

/// Queues a run for a visible campaign and writes its audit row.
pub async fn create(tx: &TenantTx, new: NewRun) -> Result<AgentRun, DomainError> {
    require_write(tx, "this role cannot run agents")?;
    let campaign = campaigns::by_id(tx, new.campaign_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let id = OutputId::generate();
    dispatch!(tx, Runs, insert_in(tx, id, &campaign, &new)).map_err(map_db_err)?;
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

async fn transition_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    id: OutputId,
    to: &Transition,
) -> Result<u64, DbErr> {
    let now = Expr::current_timestamp();
    let update = E::update_many();
    let update = match to {
        // Starting renews the run's lease too (see `renew_leases`).
        Transition::Start => update
            .col_expr(E::col(Runs::Status), RunStatus::Running.as_str().into())
            .col_expr(E::col(Runs::StartedAt), now.clone())
            .col_expr(E::col(Runs::HeartbeatAt), now),
        Transition::Finish {
            status,
            output,
            error,
            prompt_tokens,
            completion_tokens,
        } => {
            let started_at = E::col(Runs::StartedAt);
            update
                .col_expr(E::col(Runs::Status), status.as_str().into())
                .col_expr(E::col(Runs::Output), output.clone().into())
                .col_expr(E::col(Runs::Error), error.clone().into())
                .col_expr(
                    E::col(Runs::PromptTokens),
                    i32::try_from(*prompt_tokens).unwrap_or(i32::MAX).into(),
                )
                .col_expr(
                    E::col(Runs::CompletionTokens),
                    i32::try_from(*completion_tokens).unwrap_or(i32::MAX).into(),
                )
                .col_expr(E::col(Runs::FinishedAt), now.clone())
                .col_expr(
                    started_at,
                    Func::coalesce([started_at.into_expr(), now]).into(),
                )
        }
    };
    let done = update
        .filter(E::in_scope(tx))
        .filter(E::col(Runs::Id).eq(id.as_uuid()))
        .filter(status_in::<E>(&UNFINISHED))
        .exec(tx)
        .await?;
    Ok(done.rows_affected)
}

/// Moves a run on, if it has not ended yet; returns the run as it now is,
/// or `None` if it was not visible or had already ended (a cancelled run is
/// never overwritten by a late result).
pub async fn transition(
    tx: &TenantTx,
    id: OutputId,
    to: Transition,
) -> Result<Option<AgentRun>, DomainError> {
    let moved = dispatch!(tx, Runs, transition_in(tx, id, &to)).map_err(map_db_err)?;
    if moved == 0 {
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

async fn unfinished_in<E: InSchema<Runs>>(tx: &TenantTx) -> Result<Option<i64>, DbErr> {
    E::find()
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .filter(E::in_org(tx))
        .filter(status_in::<E>(&UNFINISHED))
        .into_tuple()
        .one(tx)
        .await
}

/// How many of the organization's runs are QUEUED or RUNNING, whenever
/// queued (their tokens will count in the month they end): all of them,
/// whatever the context's client scope, because the quota is the
/// organization's. The one counting statement runs as `app_maint`, which
/// sees nothing of a run but its organization, id, status and times,
/// filtered by the context's organization; the transaction is back in its
/// runtime role right after.
pub async fn unfinished(tx: &TenantTx) -> Result<u64, DomainError> {
    // Raw SQL: a role switch, which the query builder has no statement for.
    tx.execute_unprepared("SET LOCAL ROLE app_maint")
        .await
        .map_err(map_db_err)?;
    let counted = dispatch!(tx, Runs, unfinished_in(tx)).map_err(map_db_err)?;
    tx.execute_unprepared(&format!(
        "SET LOCAL ROLE {}",
        crate::tx::runtime_role(tx.ctx().org_type())
    ))
    .await
    .map_err(map_db_err)?;
    Ok(counted.map_or(0, |n| n.max(0) as u64))
}

async fn tokens_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Option<i64>, DbErr> {
    use sea_orm::sea_query::ExprTrait as _;
    let tokens = E::col(Runs::PromptTokens)
        .into_expr()
        .add(E::col(Runs::CompletionTokens).into_expr());
    let sum = Func::coalesce([Func::sum(tokens).into(), Expr::Constant(0.into())]);
    E::find()
        .select_only()
        .column_as(Expr::from(sum).cast_as("bigint"), "n")
        .filter(E::in_org(tx))
        .filter(E::col(Runs::CreatedAt).gte(since))
        .into_tuple()
        .one(tx)
        .await
}

/// Tokens the organization used since `since` (for the monthly quota).
pub async fn tokens_used_since(
    tx: &TenantTx,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DomainError> {
    let sum = dispatch!(tx, Runs, tokens_in(tx, since)).map_err(map_db_err)?;
    Ok(sum.map(|n| n.max(0) as u64).unwrap_or(0))
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
