//! The audit log: one row per successful mutation, written in the
//! mutation's own transaction.

use sea_orm::{ActiveValue::Set, EntityTrait};
use strata_domain::{ClientId, DomainError};
use uuid::Uuid;

use crate::entity::public::audit_log;
use crate::error::map_db_err;
use crate::tx::TenantTx;

/// What a mutation did.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    /// The operation; its audit name (`createCampaign`, ...) is written.
    pub action: strata_domain::Action,
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
///
/// The row is not read back (no `RETURNING`): only a context that may
/// administer the organization may read the audit log, and every context
/// that mutates writes to it.
pub async fn record(tx: &TenantTx, entry: AuditEntry<'_>) -> Result<(), DomainError> {
    let ctx = tx.ctx();
    let row = audit_log::ActiveModel {
        org_id: Set(ctx.org_id().as_uuid()),
        id: Set(Uuid::now_v7()),
        client_id: Set(entry.client_id.map(|c| c.as_uuid())),
        actor_user_id: Set(ctx.actor().user_id().map(|u| u.as_uuid())),
        actor_api_key_id: Set(ctx.actor().api_key_id().map(|k| k.as_uuid())),
        operation: Set(entry.action.audit_name().unwrap_or("unknown").to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        request_id: Set(Some(ctx.request_id().to_owned())),
        details: Set(entry.details),
        created_at: Set(chrono::Utc::now()),
    };
    audit_log::Entity::insert(row)
        .exec_without_returning(tx)
        .await
        .map_err(map_db_err)?;
    Ok(())
}

/// Which audit rows to list; every field given narrows the list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuditFilter {
    /// Only rows about this client.
    pub client_id: Option<ClientId>,
    /// Only rows of this actor: a user or an API key.
    pub actor_id: Option<Uuid>,
    /// Only rows of this operation (`createCampaign`, ...).
    pub operation: Option<String>,
    /// Only rows written at or after this time.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only rows written before this time.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// The organization's rows `filter` lets through.
fn filtered(tx: &TenantTx, filter: &AuditFilter) -> sea_orm::Select<audit_log::Entity> {
    use sea_orm::{ColumnTrait, Condition, QueryFilter};
    let mut q =
        audit_log::Entity::find().filter(audit_log::Column::OrgId.eq(tx.ctx().org_id().as_uuid()));
    if let Some(c) = filter.client_id {
        q = q.filter(audit_log::Column::ClientId.eq(c.as_uuid()));
    }
    if let Some(a) = filter.actor_id {
        q = q.filter(
            Condition::any()
                .add(audit_log::Column::ActorUserId.eq(a))
                .add(audit_log::Column::ActorApiKeyId.eq(a)),
        );
    }
    if let Some(o) = &filter.operation {
        q = q.filter(audit_log::Column::Operation.eq(o.as_str()));
    }
    if let Some(t) = filter.from {
        q = q.filter(audit_log::Column::CreatedAt.gte(t));
    }
    if let Some(t) = filter.to {
        q = q.filter(audit_log::Column::CreatedAt.lt(t));
    }
    q
}

/// A page of the organization's audit log that `filter` lets through,
/// newest first (owners and admins).
pub async fn list(
    tx: &TenantTx,
    filter: &AuditFilter,
    page: &crate::repo::PageRequest,
) -> Result<crate::repo::Page<strata_domain::model::AuditRecord>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ReadAuditLog)?;
    let q = filtered(tx, filter);
    let rows = super::newest_first(q, audit_log::Column::CreatedAt, audit_log::Column::Id, page)
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(page.page(rows).map(record_of))
}

/// The organization's audit rows among `ids` (owners and admins), in one
/// statement.
pub async fn by_ids(
    tx: &TenantTx,
    ids: &[Uuid],
) -> Result<Vec<strata_domain::model::AuditRecord>, DomainError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    crate::repo::require(tx, strata_domain::Action::ReadAuditLog)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = audit_log::Entity::find()
        .filter(audit_log::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(crate::repo::any_of(
            audit_log::Column::Id,
            ids.iter().copied(),
        ))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(rows.into_iter().map(record_of).collect())
}

fn record_of(r: audit_log::Model) -> strata_domain::model::AuditRecord {
    use strata_domain::{ApiKeyId, UserId};
    strata_domain::model::AuditRecord {
        id: r.id,
        client_id: r.client_id.map(ClientId::from_uuid),
        actor_user_id: r.actor_user_id.map(UserId::from_uuid),
        actor_api_key_id: r.actor_api_key_id.map(ApiKeyId::from_uuid),
        operation: r.operation,
        target_type: r.target_type,
        target_id: r.target_id,
        request_id: r.request_id,
        details: r.details,
        created_at: r.created_at,
    }
}

/// How many audit rows `filter` lets through (owners and admins).
pub async fn count(tx: &TenantTx, filter: &AuditFilter) -> Result<u64, DomainError> {
    use sea_orm::PaginatorTrait;
    crate::repo::require(tx, strata_domain::Action::ReadAuditLog)?;
    filtered(tx, filter).count(tx).await.map_err(map_db_err)
}
