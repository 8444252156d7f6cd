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
