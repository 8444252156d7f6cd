//! Token usage per organization and calendar month (UTC), for the agents'
//! monthly quota. Every member's runs count, whatever clients they see.

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

/// Adds one run's tokens to this month's usage.
pub async fn record(tx: &TenantTx, tokens: u64) -> Result<(), DomainError> {
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO public.token_usage (org_id, month, tokens, runs) \
         VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2, 1) \
         ON CONFLICT (org_id, month) DO UPDATE \
         SET tokens = public.token_usage.tokens + EXCLUDED.tokens, \
             runs = public.token_usage.runs + 1, updated_at = now()",
        [
            tx.ctx().org_id().as_uuid().into(),
            i64::try_from(tokens).unwrap_or(i64::MAX).into(),
        ],
    ))
    .await
    .map_err(map_db_err)?;
    Ok(())
}
