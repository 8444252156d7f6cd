//! Brand guidelines: one set per SME (`public.brand_guidelines`) or per
//! agency client (`tenant_b.entity_data` of kind `BRAND_GUIDELINES`). Each
//! statement is written once over the two-schema primitive and runs on the
//! copy of the context's organization type.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryFilter};
use strata_domain::model::BrandGuidelines;
use strata_domain::{ClientId, DomainError, JsonDocument, OrgId};
use uuid::Uuid;

use crate::entity::{public, tenant_b};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::two_schema::{InSchema, TwoSchemaTable, dispatch};
use crate::repo::{any_of, content_client};
use crate::tx::TenantTx;

/// The columns both copies of brand guidelines have.
#[derive(Clone, Copy, Debug)]
enum Guidelines {
    OrgId,
    Content,
    UpdatedAt,
}

impl TwoSchemaTable for Guidelines {
    type Sme = public::brand_guidelines::Entity;
    type Agency = tenant_b::entity_data::Entity;
    const ORG_ID: Self = Self::OrgId;
}

impl InSchema<Guidelines> for public::brand_guidelines::Entity {
    const CLIENT_ID: Option<Self::Column> = None;

    fn col(c: Guidelines) -> Self::Column {
        use public::brand_guidelines::Column as C;
        match c {
            Guidelines::OrgId => C::OrgId,
            Guidelines::Content => C::Content,
            Guidelines::UpdatedAt => C::UpdatedAt,
        }
    }
}

impl InSchema<Guidelines> for tenant_b::entity_data::Entity {
    const CLIENT_ID: Option<Self::Column> = Some(tenant_b::entity_data::Column::ClientId);
    const KIND: Option<(Self::Column, &'static str)> =
        Some((tenant_b::entity_data::Column::Kind, "BRAND_GUIDELINES"));

    fn col(c: Guidelines) -> Self::Column {
        use tenant_b::entity_data::Column as C;
        match c {
            Guidelines::OrgId => C::OrgId,
            Guidelines::Content => C::Content,
            Guidelines::UpdatedAt => C::UpdatedAt,
        }
    }
}

/// What a copy's new row holds beyond the shared columns.
trait GuidelinesCopy: InSchema<Guidelines> {
    /// The columns only this copy has: an agency's set is a row of
    /// `entity_data`, with an id and a creation time of its own.
    fn own_columns(now: chrono::DateTime<chrono::Utc>) -> Vec<(Self::Column, Expr)>;
}

impl GuidelinesCopy for public::brand_guidelines::Entity {
    fn own_columns(_: chrono::DateTime<chrono::Utc>) -> Vec<(Self::Column, Expr)> {
        Vec::new()
    }
}

impl GuidelinesCopy for tenant_b::entity_data::Entity {
    fn own_columns(now: chrono::DateTime<chrono::Utc>) -> Vec<(Self::Column, Expr)> {
        use tenant_b::entity_data::Column as C;
        vec![(C::Id, Uuid::now_v7().into()), (C::CreatedAt, now.into())]
    }
}

/// The columns a [`Row`] reads (with `client_id`).
const ROW: [Guidelines; 3] = [
    Guidelines::OrgId,
    Guidelines::Content,
    Guidelines::UpdatedAt,
];

/// A set of guidelines of either copy.
#[derive(Debug, FromQueryResult)]
struct Row {
    org_id: Uuid,
    client_id: Option<Uuid>,
    content: serde_json::Value,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for BrandGuidelines {
    fn from(r: Row) -> Self {
        BrandGuidelines {
            org_id: OrgId::from_uuid(r.org_id),
            client_id: r.client_id.map(ClientId::from_uuid),
            content: r.content,
            updated_at: r.updated_at,
        }
    }
}

async fn get_in<E: InSchema<Guidelines>>(
    tx: &TenantTx,
    client: Option<ClientId>,
) -> Result<Option<BrandGuidelines>, DbErr> {
    // One set per SME, or per client of an agency: an agency without a
    // client names no set.
    if client.is_some() != E::CLIENT_ID.is_some() {
        return Ok(None);
    }
    let Some(of_client) = E::of_client(tx, client) else {
        return Ok(None);
    };
    let row = E::select(tx, &ROW)
        .filter(of_client)
        .into_model::<Row>()
        .one(tx)
        .await?;
    Ok(row.map(BrandGuidelines::from))
}

/// The guidelines of the SME, or of `client` of the agency; `None` when there
/// are none yet or the client is not visible.
pub async fn get(
    tx: &TenantTx,
    client: Option<ClientId>,
) -> Result<Option<BrandGuidelines>, DomainError> {
    dispatch!(tx, Guidelines, get_in(tx, client)).map_err(map_db_err)
}

async fn by_clients_in<E: InSchema<Guidelines>>(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<Vec<BrandGuidelines>, DbErr> {
    let Some(client) = E::CLIENT_ID else {
        // SMEs have no clients.
        return Ok(Vec::new());
    };
    let visible = clients
        .iter()
        .filter(|c| tx.ctx().clients().includes(**c))
        .map(|c| c.as_uuid());
    let rows = E::select(tx, &ROW)
        .filter(any_of(client, visible))
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(rows.into_iter().map(BrandGuidelines::from).collect())
}

/// The guidelines of several visible clients (for loaders).
pub async fn by_clients(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<Vec<BrandGuidelines>, DomainError> {
    if clients.is_empty() {
        return Ok(Vec::new());
    }
    dispatch!(tx, Guidelines, by_clients_in(tx, clients)).map_err(map_db_err)
}

async fn save_in<E: GuidelinesCopy>(
    tx: &TenantTx,
    client: Option<ClientId>,
    content: &serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    // One set per SME (the key) or per client (a partial unique index, whose
    // predicate must be spelt as a literal for PostgreSQL to infer it).
    let mut target = vec![E::col(Guidelines::OrgId)];
    target.extend(E::CLIENT_ID);
    let mut on_conflict = OnConflict::columns(target);
    on_conflict.update_columns([E::col(Guidelines::Content), E::col(Guidelines::UpdatedAt)]);
    if let Some((kind, value)) = E::KIND {
        on_conflict.target_and_where(Expr::col(kind).eq(Expr::Constant(value.into())));
    }
    let mut values = vec![
        (E::col(Guidelines::Content), content.clone().into()),
        (E::col(Guidelines::UpdatedAt), now.into()),
    ];
    values.extend(E::own_columns(now));
    let mut insert = E::insert_row(tx, client, values)?;
    insert.on_conflict(on_conflict);
    tx.execute(&insert).await?;
    Ok(())
}

/// Replaces the guidelines (of the SME, or of `client`), writing the audit
/// row.
pub async fn save(
    tx: &TenantTx,
    client: Option<ClientId>,
    content: JsonDocument,
) -> Result<BrandGuidelines, DomainError> {
    crate::repo::require(tx, strata_domain::Action::SaveBrandGuidelines)?;
    let client = content_client(tx, client).await?;
    let org = tx.ctx().org_id();
    let now = chrono::Utc::now();
    dispatch!(tx, Guidelines, save_in(tx, client, content.as_value(), now)).map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::SaveBrandGuidelines,
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
