//! Token usage per organization and calendar month (UTC), for the agents'
//! monthly quota. Every member's runs count, whatever clients they see.
//!
//! Raw SQL, on purpose: one table in `public` for both tenant types (no
//! two-schema copy), read and written by an advisory lock and an additive
//! upsert (`tokens = token_usage.tokens + EXCLUDED.tokens`) kept verbatim.

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};
use strata_domain::DomainError;

use crate::error::map_db_err;
use crate::tx::TenantTx;

/// Tokens the context's organization used this month.
pub async fn tokens_this_month(tx: &TenantTx) -> Result<u64, DomainError> {
    #[derive(FromQueryResult)]
    struct Used {
        tokens: i64,
    }
    let used = Used::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT tokens FROM public.token_usage WHERE org_id = $1 \
         AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date",
        [tx.ctx().org_id().as_uuid().into()],
    ))
    .one(tx)
    .await
    .map_err(map_db_err)?;
    Ok(used.map(|u| u.tokens.max(0) as u64).unwrap_or(0))
}

/// The first key of the advisory lock that serializes an organization's
/// quota checks (`QUOT`); the second is the last four bytes of its id.
pub const QUOTA_LOCK_CLASS: i32 = 0x5155_4f54;

/// Whether the context's organization may queue another run under a
/// monthly quota of `quota` tokens: the tokens it used this month, plus
/// `reservation` for each of its runs still QUEUED or RUNNING (their tokens
/// are not known yet), must stay below the quota.
///
/// It first takes a transaction-level advisory lock on the organization,
/// held until the caller's transaction ends, so that concurrent checks of
/// one organization run one after the other, each seeing the runs the
/// previous one queued. Call it in the transaction that inserts the run.
///
/// Every run of the organization in flight counts, whatever clients the
/// caller sees (see `outputs::unfinished`).
pub async fn within_quota(
    tx: &TenantTx,
    quota: u64,
    reservation: u64,
) -> Result<bool, DomainError> {
    let org = tx.ctx().org_id().as_uuid();
    let b = org.as_bytes();
    let key = i32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, $2)",
        [QUOTA_LOCK_CLASS.into(), key.into()],
    ))
    .await
    .map_err(map_db_err)?;
    let used = tokens_this_month(tx).await?;
    let in_flight = crate::repo::outputs::unfinished(tx).await?;
    Ok(used.saturating_add(in_flight.saturating_mul(reservation)) < quota)
}

/// Adds one run's tokens to this month's usage.
pub async fn record(tx: &TenantTx, tokens: u64) -> Result<(), DomainError> {
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO public.token_usage (org_id, month, tokens, runs) \
         VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2, 1) \
         ON CONFLICT (org_id, month) DO UPDATE \
         SET tokens = public.token_usage.tokens + EXCLUDED.tokens, \
             runs = public.token_usage.runs + 1, updated_at = EXCLUDED.updated_at",
        [
            tx.ctx().org_id().as_uuid().into(),
            i64::try_from(tokens).unwrap_or(i64::MAX).into(),
        ],
    ))
    .await
    .map_err(map_db_err)?;
    Ok(())
}

/// What a usage report is grouped by; nothing grouped gives one total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageGrouping {
    /// By client (agencies; SMEs' runs have none).
    pub client: bool,
    /// By agent.
    pub agent: bool,
    /// By calendar month (UTC).
    pub month: bool,
}

/// One group of a usage report.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct UsageRow {
    /// The client, when grouped by client (and the runs have one).
    pub client_id: Option<uuid::Uuid>,
    /// The agent, when grouped by agent.
    pub agent: Option<String>,
    /// The month's first day, when grouped by month.
    pub month: Option<chrono::NaiveDate>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Runs.
    pub runs: i64,
}

/// Token usage of the runs queued in `[from, to)` that the context sees
/// (those of its clients, for a context limited to some), grouped as
/// `by` says, largest groups first (ungrouped, one total, zero when no
/// run is in the range). Owners and admins, and contexts
/// limited to clients (for their clients), may read it.
///
/// Read from the runs themselves (not the monthly ledger): they carry the
/// client and the agent an agency bills by.
pub async fn report(
    tx: &TenantTx,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    by: UsageGrouping,
) -> Result<Vec<UsageRow>, DomainError> {
    let ctx = tx.ctx();
    let limited = crate::repo::limited_clients(tx).map(|ids| ids.collect::<Vec<_>>());
    // SMEs have no clients: only their administrators read usage.
    let limited = limited.filter(|_| ctx.org_type() == strata_domain::OrgType::Agency);
    if !ctx.can_administer() && limited.is_none() {
        return Err(DomainError::Forbidden(
            "only owners and admins, or a caller limited to some clients, can read usage",
        ));
    }
    let (table, client) = match ctx.org_type() {
        strata_domain::OrgType::Sme => ("public.agent_outputs", "NULL::uuid"),
        strata_domain::OrgType::Agency => ("tenant_b.outputs", "client_id"),
    };
    let mut groups = Vec::new();
    let mut column = |on: bool, expr: &str, name: &str, ty: &str| {
        if on {
            groups.push(name.to_owned());
            format!("{expr} AS {name}")
        } else {
            format!("NULL::{ty} AS {name}")
        }
    };
    let client_col = column(by.client, client, "client_id", "uuid");
    let agent_col = column(by.agent, "agent", "agent", "text");
    let month_col = column(
        by.month,
        "date_trunc('month', created_at AT TIME ZONE 'UTC')::date",
        "month",
        "date",
    );
    let mut values: Vec<sea_orm::Value> =
        vec![ctx.org_id().as_uuid().into(), from.into(), to.into()];
    let scope = match limited {
        Some(ids) => {
            values.push(crate::repo::uuid_array(ids).into());
            " AND client_id = ANY($4::uuid[])"
        }
        None => "",
    };
    let group_by = if groups.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", groups.join(", "))
    };
    let sql = format!(
        "SELECT {client_col}, {agent_col}, {month_col}, \
           coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens, \
           coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens, \
           count(*)::bigint AS runs \
         FROM {table} WHERE org_id = $1 AND created_at >= $2 AND created_at < $3{scope}{group_by} \
         ORDER BY coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) DESC, \
           count(*) DESC, 1, 2, 3"
    );
    UsageRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .all(tx)
    .await
    .map_err(map_db_err)
}
