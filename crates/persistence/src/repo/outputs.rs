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
use crate::tx::TenantTx;

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
        // Starting renews the run's lease too (see
        // `maintenance::renew_leases`).
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
