//! The retention sweep: organizations that keep their agent runs for a
//! limited time (`retentionDays`) lose their older finished runs, with
//! their outputs and streamed text, on every sweep; data exports past
//! their expiry go with their files.
//!
//! Which organizations: read as the narrow `app_maint` role, which sees
//! only the id, type and retention of those that set one. The deletion:
//! in each organization's own transaction, as its runtime role with its
//! context (the server itself acting), so row-level security
//! keeps a sweep of one organization inside it. Several replicas sweep
//! safely: an organization's sweep first takes a transaction-scoped
//! advisory lock on it and skips the organization when another replica
//! holds it; the deletion and its audit row commit together, under the
//! lock, or not at all (a replica that loses its connection loses its
//! lock and its uncommitted deletion with it).

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};
use strata_domain::{DomainError, OrgId, OrgType};
use uuid::Uuid;

use crate::Db;
use crate::context::VerifiedContext;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::tx::{TenantTx, as_role};

/// The first key of the sweep's advisory locks (the second is the
/// organization's).
const LOCK_SPACE: i32 = 0x5354_5254; // "STRT"

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Organizations whose runs were deleted, with how many.
    pub organizations: Vec<(OrgId, u64)>,
    /// Organizations skipped because another replica was sweeping them.
    pub skipped: u64,
    /// Data exports deleted because they expired.
    pub exports: u64,
}

#[derive(Debug, FromQueryResult)]
struct Keeping {
    id: Uuid,
    org_type: String,
    retention_days: i32,
}

/// Sweeps every organization that set a retention once, and deletes the
/// data exports of every organization that expired.
pub async fn sweep(db: &Db) -> Result<Swept, DomainError> {
    // An export's trouble never stops the runs' retention.
    let exports = crate::export::delete_expired(db).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "expired data exports could not be deleted");
        0
    });
    let keeping = as_role(db, "app_maint", |txn| async move {
        let rows = Keeping::find_by_statement(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id, type AS org_type, retention_days FROM public.organizations \
             WHERE retention_days > 0 ORDER BY id",
        ))
        .all(&txn)
        .await?;
        Ok((txn, rows))
    })
    .await?;
    let mut swept = Swept {
        exports,
        ..Swept::default()
    };
    for org in keeping {
        let Some(org_type) = OrgType::parse(&org.org_type) else {
            continue;
        };
        let org_id = OrgId::from_uuid(org.id);
        match sweep_one(db, org_id, org_type, org.retention_days).await? {
            None => swept.skipped += 1,
            Some(0) => {}
            Some(n) => swept.organizations.push((org_id, n)),
        }
    }
    Ok(swept)
}

/// Sweeps one organization in its own transaction: `None` when another
/// replica holds its lock, else how many runs went.
async fn sweep_one(
    db: &Db,
    org: OrgId,
    org_type: OrgType,
    days: i32,
) -> Result<Option<u64>, DomainError> {
    let ctx = VerifiedContext::for_retention(org, org_type);
    let tx = TenantTx::begin(db, &ctx).await?;
    let locked = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2::text)) AS locked",
            [LOCK_SPACE.into(), org.as_uuid().to_string().into()],
        ))
        .await
        .map_err(map_db_err)?
        .map(|r| r.try_get::<bool>("", "locked"))
        .transpose()
        .map_err(map_db_err)?
        .unwrap_or(false);
    if !locked {
        tx.commit().await?;
        return Ok(None);
    }
    let table = match org_type {
        OrgType::Sme => "public.agent_outputs",
        OrgType::Agency => "tenant_b.outputs",
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let deleted = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "DELETE FROM {table} WHERE org_id = $1 AND created_at < $2 \
                 AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
            ),
            [org.as_uuid().into(), cutoff.into()],
        ))
        .await
        .map_err(map_db_err)?
        .rows_affected();
    if deleted > 0 {
        audit::record(
            &tx,
            AuditEntry {
                action: strata_domain::Action::RetentionSweep,
                target_type: "Organization",
                target_id: Some(org.as_uuid()),
                client_id: None,
                details: serde_json::json!({
                    "runs": deleted,
                    "retentionDays": days,
                    "before": cutoff,
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(deleted))
}
