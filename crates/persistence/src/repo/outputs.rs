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
//! works across tenants as narrow roles and lives apart, in
//! `crate::maintenance`.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryFilter, QuerySelect,
    Select, Statement, Value,
};
use strata_domain::model::{AgentRun, Campaign, RunStatus, StoredJson};
use strata_domain::{CampaignId, ClientId, DomainError, OrgId, OrgType, OutputId, UserId};
use uuid::Uuid;

use crate::Db;
use crate::entity::{public, tenant_b};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::two_schema::{InSchema, TwoSchemaTable, dispatch};
use crate::repo::{Page, PageRequest, any_of, campaigns};
use crate::tx::{TenantTx, as_role};

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

/// Which runs the organization-wide list shows: every field narrows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RunListFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<RunStatus>,
    /// Only these agents, by name (all when empty).
    pub agents: Vec<&'static str>,
    /// Only this campaign's runs.
    pub campaign: Option<CampaignId>,
    /// Only this client's runs.
    pub client: Option<ClientId>,
    /// Only runs queued at or after this time.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only runs queued before this time.
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
}

fn listed<E: InSchema<Runs>>(
    tx: &TenantTx,
    q: Select<E>,
    filter: &RunListFilter,
) -> Option<Select<E>> {
    let of_client = E::of_client(tx, filter.client)?;
    let mut q = q.filter(E::in_scope(tx)).filter(of_client);
    if !filter.statuses.is_empty() {
        q = q.filter(status_in::<E>(&filter.statuses));
    }
    if !filter.agents.is_empty() {
        q = q.filter(E::col(Runs::Agent).is_in(filter.agents.iter().copied()));
    }
    if let Some(c) = filter.campaign {
        q = q.filter(E::col(Runs::CampaignId).eq(c.as_uuid()));
    }
    if let Some(t) = filter.created_from {
        q = q.filter(E::col(Runs::CreatedAt).gte(t));
    }
    if let Some(t) = filter.created_to {
        q = q.filter(E::col(Runs::CreatedAt).lt(t));
    }
    Some(q)
}

async fn list_in<E: InSchema<Runs>>(
    tx: &TenantTx,
    filter: &RunListFilter,
    page: &PageRequest,
) -> Result<Page<AgentRun>, DbErr> {
    let Some(q) = listed::<E>(tx, select::<E>(tx), filter) else {
        return Ok(Page::empty());
    };
    let (created, id) = (E::col(Runs::CreatedAt), E::col(Runs::Id));
    // Runs have no name: their list sorts by creation only, either way.
    let rows = crate::repo::in_order(q, (created, created), id, page)
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(page.page(rows).map(AgentRun::from))
}

/// A page of the organization's runs (those of the context's clients), in
/// the page's order (by creation), as `filter` narrows them.
pub async fn list(
    tx: &TenantTx,
    filter: &RunListFilter,
    page: &PageRequest,
) -> Result<Page<AgentRun>, DomainError> {
    dispatch!(tx, Runs, list_in(tx, filter, page)).map_err(map_db_err)
}

async fn count_in<E: InSchema<Runs>>(tx: &TenantTx, filter: &RunListFilter) -> Result<u64, DbErr>
where
    E::Model: Send + Sync,
{
    use sea_orm::PaginatorTrait;
    match listed::<E>(tx, E::find(), filter) {
        Some(q) => q.count(tx).await,
        None => Ok(0),
    }
}

/// How many runs [`list`] pages through.
pub async fn count(tx: &TenantTx, filter: &RunListFilter) -> Result<u64, DomainError> {
    dispatch!(tx, Runs, count_in(tx, filter)).map_err(map_db_err)
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
    let mut runs = select::<E>(tx);
    if let Some(statuses) = filter.statuses() {
        runs = runs.filter(status_in::<E>(statuses));
    }
    let ids: Vec<Uuid> = campaign_ids.iter().map(|c| c.as_uuid()).collect();
    let sort = (E::col(Runs::CreatedAt), E::col(Runs::Id));
    crate::repo::pages_per_parent(tx, runs, E::col(Runs::CampaignId), &ids, sort, page).await
}

/// A page of each campaign's runs, newest first, in one statement.
pub async fn pages_for_campaigns(
    tx: &TenantTx,
    campaign_ids: &[CampaignId],
    filter: RunFilter,
    page: &PageRequest,
) -> Result<HashMap<CampaignId, Page<AgentRun>>, DomainError> {
    if campaign_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = dispatch!(tx, Runs, pages_in(tx, campaign_ids, filter, page)).map_err(map_db_err)?;
    let mut fetched: HashMap<CampaignId, Vec<AgentRun>> = HashMap::new();
    for row in rows {
        let run = AgentRun::from(row);
        fetched.entry(run.campaign_id).or_default().push(run);
    }
    Ok(fetched
        .into_iter()
        .map(|(campaign, runs)| (campaign, page.page(runs)))
        .collect())
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
    crate::repo::require(tx, strata_domain::Action::RunAgent)?;
    let campaign = campaigns::by_id(tx, new.campaign_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if let Some(client) = campaign.client_id {
        crate::repo::content_client(tx, Some(client)).await?;
    }
    let id = OutputId::generate();
    dispatch!(tx, Runs, insert_in(tx, id, &campaign, &new)).map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::RunAgent,
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
        // Starting renews the run's lease too (see `maintenance::renew_leases`).
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
            // A run that ends without having started (cancelled while
            // queued) starts and ends at once. Two statements, not
            // `coalesce(started_at, now())`: Citus refuses a non-immutable
            // function inside COALESCE or CASE in an UPDATE.
            E::update_many()
                .col_expr(E::col(Runs::StartedAt), now.clone())
                .filter(E::in_scope(tx))
                .filter(E::col(Runs::Id).eq(id.as_uuid()))
                .filter(status_in::<E>(&UNFINISHED))
                .filter(E::col(Runs::StartedAt).is_null())
                .exec(tx)
                .await?;
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
                .col_expr(E::col(Runs::FinishedAt), now)
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
    crate::repo::require(tx, strata_domain::Action::CancelAgentRun)?;
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
            action: strata_domain::Action::CancelAgentRun,
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

/// How many of `org`'s runs are QUEUED or RUNNING, counted as `app_maint`
/// in a transaction of its own: the quota check's count on Citus, where a
/// request's transaction cannot switch to another role on the workers
/// (Citus opens a worker connection per role and replays the
/// transaction's every `SET LOCAL` on it). The caller holds the
/// organization's quota lock, so the runs it counts are every run another
/// check let through.
async fn unfinished_of(db: &Db, org: OrgId, org_type: OrgType) -> Result<u64, DomainError> {
    let table = match org_type {
        OrgType::Sme => "public.agent_outputs",
        OrgType::Agency => "tenant_b.outputs",
    };
    let sql = format!(
        "SELECT count(*) AS n FROM {table} WHERE org_id = $1 AND status IN ('QUEUED', 'RUNNING')"
    );
    let org = org.as_uuid();
    let n = as_role(db, "app_maint", |txn| async move {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [Value::from(org)],
            ))
            .await?;
        let n = match row {
            Some(r) => r.try_get::<i64>("", "n")?,
            None => 0,
        };
        Ok((txn, n))
    })
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// How many of the organization's runs are QUEUED or RUNNING, whenever
/// queued (their tokens will count in the month they end): all of them,
/// whatever the context's client scope, because the quota is the
/// organization's. The one counting statement runs as `app_maint`, which
/// sees nothing of a run but its organization, id, status and times,
/// filtered by the context's organization; the transaction is back in its
/// runtime role right after.
pub async fn unfinished(tx: &TenantTx) -> Result<u64, DomainError> {
    if let Some(db) = tx.citus() {
        let ctx = tx.ctx();
        return unfinished_of(db, ctx.org_id(), ctx.org_type()).await;
    }
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
