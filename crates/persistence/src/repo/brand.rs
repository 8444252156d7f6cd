//! Brand guidelines: one set per SME (`public.brand_guidelines`) or per
//! agency client (`tenant_b.entity_data` of kind `BRAND_GUIDELINES`).

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use strata_domain::model::BrandGuidelines;
use strata_domain::{ClientId, DomainError, JsonDocument, OrgId, OrgType};

use crate::entity::public::brand_guidelines as sme;
use crate::entity::tenant_b::entity_data as agency;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{client_visible, content_client, require_write};
use crate::tx::TenantTx;

const KIND: &str = "BRAND_GUIDELINES";

/// The guidelines of the SME, or of `client` of the agency; `None` when there
/// are none yet or the client is not visible.
pub async fn get(
    tx: &TenantTx,
    client: Option<ClientId>,
) -> Result<Option<BrandGuidelines>, DomainError> {
    let org = tx.ctx().org_id();
    match (tx.ctx().org_type(), client) {
        (OrgType::Sme, None) => Ok(sme::Entity::find()
            .filter(sme::Column::OrgId.eq(org.as_uuid()))
            .one(tx)
            .await
            .map_err(map_db_err)?
            .map(|m| BrandGuidelines {
                org_id: org,
                client_id: None,
                content: m.content,
                updated_at: m.updated_at,
            })),
        (OrgType::Agency, Some(c)) if client_visible(tx, Some(c)) => {
            Ok(by_clients(tx, &[c]).await?.into_iter().next())
        }
        _ => Ok(None),
    }
}

/// The guidelines of several visible clients (for loaders).
pub async fn by_clients(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<Vec<BrandGuidelines>, DomainError> {
    if tx.ctx().org_type() != OrgType::Agency || clients.is_empty() {
        return Ok(Vec::new());
    }
    let org = tx.ctx().org_id();
    let visible: Vec<_> = clients
        .iter()
        .filter(|c| tx.ctx().clients().includes(**c))
        .map(|c| c.as_uuid())
        .collect();
    Ok(agency::Entity::find()
        .filter(agency::Column::OrgId.eq(org.as_uuid()))
        .filter(agency::Column::Kind.eq(KIND))
        .filter(agency::Column::ClientId.is_in(visible))
        .all(tx)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(|m| BrandGuidelines {
            org_id: OrgId::from_uuid(m.org_id),
            client_id: Some(ClientId::from_uuid(m.client_id)),
            content: m.content,
            updated_at: m.updated_at,
        })
        .collect())
}

/// Replaces the guidelines (of the SME, or of `client`), writing the audit
/// row.
pub async fn save(
    tx: &TenantTx,
    client: Option<ClientId>,
    content: JsonDocument,
) -> Result<BrandGuidelines, DomainError> {
    require_write(tx, "this role cannot change brand guidelines")?;
    let client = content_client(tx, client).await?;
    let org = tx.ctx().org_id();
    let now = chrono::Utc::now();
    match client {
        None => {
            sme::Entity::insert(sme::ActiveModel {
                org_id: Set(org.as_uuid()),
                org_type: Set(OrgType::Sme.as_str().to_owned()),
                content: Set(content.as_value().clone()),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::column(sme::Column::OrgId)
                    .update_columns([sme::Column::Content, sme::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(tx)
            .await
            .map_err(map_db_err)?;
        }
        Some(c) => {
            // One set per client (a partial unique index holds it): update
            // the existing row, or insert the first.
            let updated = agency::Entity::update_many()
                .col_expr(
                    agency::Column::Content,
                    sea_orm::sea_query::Expr::value(content.as_value().clone()),
                )
                .col_expr(
                    agency::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(agency::Column::OrgId.eq(org.as_uuid()))
                .filter(agency::Column::ClientId.eq(c.as_uuid()))
                .filter(agency::Column::Kind.eq(KIND))
                .exec(tx)
                .await
                .map_err(map_db_err)?;
            if updated.rows_affected == 0 {
                agency::Entity::insert(agency::ActiveModel {
                    org_id: Set(org.as_uuid()),
                    id: Set(uuid::Uuid::now_v7()),
                    client_id: Set(c.as_uuid()),
                    org_type: Set(OrgType::Agency.as_str().to_owned()),
                    kind: Set(KIND.to_owned()),
                    name: Set(None),
                    content: Set(content.as_value().clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                })
                .exec_without_returning(tx)
                .await
                .map_err(map_db_err)?;
            }
        }
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "saveBrandGuidelines",
            target_type: "BrandGuidelines",
            target_id: client.map(|c| c.as_uuid()).or(Some(org.as_uuid())),
            client_id: client,
            details: serde_json::json!({}),
        },
    )
    .await?;
    Ok(BrandGuidelines {
        org_id: org,
        client_id: client,
        content: content.into_value(),
        updated_at: now,
    })
}
