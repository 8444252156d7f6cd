//! The audit log: one row per successful mutation, written in the
//! mutation's own transaction.

use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use strata_domain::{ClientId, DomainError};
use uuid::Uuid;

use crate::entity::public::audit_log;
use crate::error::map_db_err;
use crate::tx::TenantTx;

/// What a mutation did.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    /// The GraphQL operation (`createCampaign`, ...).
    pub operation: &'a str,
    /// The kind of object changed (`Campaign`, ...).
    pub target_type: &'a str,
    /// The object changed.
    pub target_id: Option<Uuid>,
    /// The client it belongs to, for agencies.
    pub client_id: Option<ClientId>,
    /// Extra, non-secret details.
    pub details: serde_json::Value,
}

/// Writes the audit row for a mutation in `tx`.
pub async fn record(tx: &TenantTx, entry: AuditEntry<'_>) -> Result<(), DomainError> {
    let ctx = tx.ctx();
    audit_log::ActiveModel {
        org_id: Set(ctx.org_id().as_uuid()),
        id: Set(Uuid::now_v7()),
        client_id: Set(entry.client_id.map(|c| c.as_uuid())),
        actor_user_id: Set(ctx.actor().user_id().map(|u| u.as_uuid())),
        actor_api_key_id: Set(ctx.actor().api_key_id().map(|k| k.as_uuid())),
        operation: Set(entry.operation.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        request_id: Set(Some(ctx.request_id().to_owned())),
        details: Set(entry.details),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    Ok(())
}
