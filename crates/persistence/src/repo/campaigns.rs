//! Campaigns of both tenant types, through one implementation over the
//! entity set of the context's organization type.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Select,
};
use strata_domain::model::{Campaign, CampaignStatus};
use strata_domain::{CampaignId, CampaignName, ClientId, DomainError, OrgId};
use uuid::Uuid;

use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{EntitySet, Page, PageRequest, any_of, col, dispatch, limited_clients};
use crate::tx::TenantTx;

/// A campaign row of either schema.
#[derive(Debug, FromQueryResult)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    client_id: Option<Uuid>,
    name: String,
    objective: Option<String>,
    status: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for Campaign {
    fn from(r: Row) -> Self {
        Campaign {
            id: CampaignId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            client_id: r.client_id.map(ClientId::from_uuid),
            name: r.name,
            objective: r.objective,
            // The table's CHECK admits only the known spellings.
            status: CampaignStatus::parse(&r.status).unwrap_or(CampaignStatus::Draft),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Which campaigns to list.
#[derive(Clone, Debug, Default)]
pub struct CampaignFilter {
    /// Only this client's (agencies).
    pub client_id: Option<ClientId>,
}

const COLUMNS: [&str; 7] = [
    "org_id",
    "id",
    "name",
    "objective",
    "status",
    "created_at",
    "updated_at",
];

/// Selects the common columns of `S`'s campaigns, scoped to the context's
/// organization, with `client_id` (NULL for SMEs).
fn select<S: EntitySet>(tx: &TenantTx) -> Result<Select<S::Campaigns>, sea_orm::DbErr> {
    let mut q = S::Campaigns::find().select_only();
    for c in COLUMNS {
        q = q.column(col::<S::Campaigns>(c)?);
    }
    q = if S::HAS_CLIENTS {
        q.column(col::<S::Campaigns>("client_id")?)
    } else {
        q.column_as(Expr::cust("NULL::uuid"), "client_id")
    };
    scoped::<S>(tx, q)
}

/// Narrows `q` to the context's organization and, for a context limited to
/// some clients, to those clients' campaigns.
fn scoped<S: EntitySet>(
    tx: &TenantTx,
    q: Select<S::Campaigns>,
) -> Result<Select<S::Campaigns>, sea_orm::DbErr> {
    let q = q.filter(col::<S::Campaigns>("org_id")?.eq(tx.ctx().org_id().as_uuid()));
    match client_scope::<S>(tx)? {
        Some(scope) => Ok(q.filter(scope)),
        None => Ok(q),
    }
}

/// `client_id = ANY(<the context's clients>)` when the context sees only
/// some clients of an agency.
fn client_scope<S: EntitySet>(
    tx: &TenantTx,
) -> Result<Option<sea_orm::sea_query::Expr>, sea_orm::DbErr> {
    match limited_clients(tx) {
        Some(ids) if S::HAS_CLIENTS => Ok(Some(any_of(col::<S::Campaigns>("client_id")?, ids))),
        _ => Ok(None),
    }
}

/// Narrows `q` to `filter`, or to nothing when the filter names a client
/// outside the context's scope (indistinguishable from a missing client).
fn apply_filter<S: EntitySet>(
    tx: &TenantTx,
    q: Select<S::Campaigns>,
    filter: &CampaignFilter,
) -> Result<Option<Select<S::Campaigns>>, sea_orm::DbErr> {
    match filter.client_id {
        None => Ok(Some(q)),
        Some(_) if !S::HAS_CLIENTS => Ok(None),
        Some(c) if !tx.ctx().clients().includes(c) => Ok(None),
        Some(c) => Ok(Some(
            q.filter(col::<S::Campaigns>("client_id")?.eq(c.as_uuid())),
        )),
    }
}

async fn by_id_in<S: EntitySet>(
    tx: &TenantTx,
    id: CampaignId,
) -> Result<Option<Campaign>, sea_orm::DbErr> {
    let row = select::<S>(tx)?
        .filter(col::<S::Campaigns>("id")?.eq(id.as_uuid()))
        .into_model::<Row>()
        .one(tx)
        .await?;
    Ok(row.map(Campaign::from))
}

/// A campaign by id, if visible to the context.
pub async fn by_id(tx: &TenantTx, id: CampaignId) -> Result<Option<Campaign>, DomainError> {
    dispatch!(tx, by_id_in(tx, id)).map_err(map_db_err)
}

async fn by_ids_in<S: EntitySet>(
    tx: &TenantTx,
    ids: &[CampaignId],
) -> Result<Vec<Campaign>, sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = select::<S>(tx)?
        .filter(col::<S::Campaigns>("id")?.is_in(ids.iter().map(|c| c.as_uuid())))
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(rows.into_iter().map(Campaign::from).collect())
}

/// Several campaigns by id (for loaders); invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[CampaignId]) -> Result<Vec<Campaign>, DomainError> {
    dispatch!(tx, by_ids_in(tx, ids)).map_err(map_db_err)
}

async fn list_in<S: EntitySet>(
    tx: &TenantTx,
    filter: &CampaignFilter,
    page: &PageRequest,
) -> Result<Page<Campaign>, sea_orm::DbErr> {
    let Some(q) = apply_filter::<S>(tx, select::<S>(tx)?, filter)? else {
        return Ok(Page {
            items: Vec::new(),
            has_next_page: false,
        });
    };
    let created = col::<S::Campaigns>("created_at")?;
    let id = col::<S::Campaigns>("id")?;
    let mut rows = super::newest_first(q, created, id, page)
        .into_model::<Row>()
        .all(tx)
        .await?;
    let has_next_page = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    Ok(Page {
        items: rows.into_iter().map(Campaign::from).collect(),
        has_next_page,
    })
}

/// A page of campaigns, newest first.
pub async fn list(
    tx: &TenantTx,
    filter: &CampaignFilter,
    page: &PageRequest,
) -> Result<Page<Campaign>, DomainError> {
    dispatch!(tx, list_in(tx, filter, page)).map_err(map_db_err)
}

async fn count_in<S: EntitySet>(
    tx: &TenantTx,
    filter: &CampaignFilter,
) -> Result<u64, sea_orm::DbErr> {
    let q = scoped::<S>(tx, S::Campaigns::find())?;
    match apply_filter::<S>(tx, q, filter)? {
        Some(q) => {
            let n: Option<i64> = q
                .select_only()
                .column_as(Expr::cust("count(*)"), "n")
                .into_tuple()
                .one(tx)
                .await?;
            Ok(n.unwrap_or(0).max(0) as u64)
        }
        None => Ok(0),
    }
}

/// How many campaigns match `filter`.
pub async fn count(tx: &TenantTx, filter: &CampaignFilter) -> Result<u64, DomainError> {
    dispatch!(tx, count_in(tx, filter)).map_err(map_db_err)
}

/// A new campaign, validated.
#[derive(Clone, Debug)]
pub struct NewCampaign {
    /// Name.
    pub name: CampaignName,
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ClientId>,
    /// Objective.
    pub objective: Option<String>,
}

async fn insert_in<S: EntitySet>(
    tx: &TenantTx,
    id: CampaignId,
    new: &NewCampaign,
) -> Result<Option<Campaign>, sea_orm::DbErr> {
    let entity = S::Campaigns::default();
    let now = chrono::Utc::now();
    let mut columns = vec![
        "org_id",
        "id",
        "name",
        "objective",
        "created_at",
        "updated_at",
    ];
    let mut values: Vec<sea_orm::sea_query::SimpleExpr> = vec![
        tx.ctx().org_id().as_uuid().into(),
        id.as_uuid().into(),
        new.name.as_str().into(),
        new.objective.clone().into(),
        now.into(),
        now.into(),
    ];
    if S::HAS_CLIENTS {
        columns.push("client_id");
        values.push(new.client_id.map(|c| c.as_uuid()).into());
    }
    let mut cols = Vec::with_capacity(columns.len());
    for c in &columns {
        cols.push(col::<S::Campaigns>(c)?);
    }
    let mut insert = Query::insert();
    insert
        .into_table(sea_orm::EntityName::table_ref(&entity))
        .columns(cols)
        .values(values)
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
    tx.execute(&insert).await?;
    by_id_in::<S>(tx, id).await
}

/// Creates a campaign and its audit row.
pub async fn create(tx: &TenantTx, new: NewCampaign) -> Result<Campaign, DomainError> {
    crate::repo::require_write(tx, "this role cannot create campaigns")?;
    crate::repo::content_client(tx, new.client_id).await?;
    let id = CampaignId::generate();
    let created = dispatch!(tx, insert_in(tx, id, &new))
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)?;
    audit::record(
        tx,
        AuditEntry {
            operation: "createCampaign",
            target_type: "Campaign",
            target_id: Some(id.as_uuid()),
            client_id: new.client_id,
            details: serde_json::json!({}),
        },
    )
    .await?;
    Ok(created)
}

/// Changes to a campaign; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct CampaignChanges {
    /// New name.
    pub name: Option<CampaignName>,
    /// New objective (`Some(None)` clears it).
    pub objective: Option<Option<String>>,
    /// New status.
    pub status: Option<CampaignStatus>,
}

async fn update_in<S: EntitySet>(
    tx: &TenantTx,
    id: CampaignId,
    changes: &CampaignChanges,
) -> Result<u64, sea_orm::DbErr> {
    let entity = S::Campaigns::default();
    let mut update = Query::update();
    update.table(sea_orm::EntityName::table_ref(&entity));
    update.value(col::<S::Campaigns>("updated_at")?, chrono::Utc::now());
    if let Some(name) = &changes.name {
        update.value(col::<S::Campaigns>("name")?, name.as_str());
    }
    if let Some(objective) = &changes.objective {
        update.value(col::<S::Campaigns>("objective")?, objective.clone());
    }
    if let Some(status) = changes.status {
        update.value(col::<S::Campaigns>("status")?, status.as_str());
    }
    update
        .and_where(col::<S::Campaigns>("org_id")?.eq(tx.ctx().org_id().as_uuid()))
        .and_where(col::<S::Campaigns>("id")?.eq(id.as_uuid()));
    if let Some(scope) = client_scope::<S>(tx)? {
        update.and_where(scope);
    }
    Ok(tx.execute(&update).await?.rows_affected())
}

/// Updates a visible campaign and writes the audit row.
pub async fn update(
    tx: &TenantTx,
    id: CampaignId,
    changes: CampaignChanges,
) -> Result<Campaign, DomainError> {
    crate::repo::require_write(tx, "this role cannot change campaigns")?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let n = dispatch!(tx, update_in(tx, id, &changes)).map_err(map_db_err)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "updateCampaign",
            target_type: "Campaign",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({
                "fields": changed_fields(&[
                    changes.name.as_ref().map(|_| "name"),
                    changes.objective.as_ref().map(|_| "objective"),
                    changes.status.map(|_| "status"),
                ]),
            }),
        },
    )
    .await?;
    by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

async fn delete_in<S: EntitySet>(tx: &TenantTx, id: CampaignId) -> Result<u64, sea_orm::DbErr> {
    let entity = S::Campaigns::default();
    let mut delete = Query::delete();
    delete
        .from_table(sea_orm::EntityName::table_ref(&entity))
        .and_where(col::<S::Campaigns>("org_id")?.eq(tx.ctx().org_id().as_uuid()))
        .and_where(col::<S::Campaigns>("id")?.eq(id.as_uuid()));
    if let Some(scope) = client_scope::<S>(tx)? {
        delete.and_where(scope);
    }
    Ok(tx.execute(&delete).await?.rows_affected())
}

/// Deletes a visible campaign (and, by cascade, its runs and outputs) and
/// writes the audit row.
pub async fn delete(tx: &TenantTx, id: CampaignId) -> Result<(), DomainError> {
    crate::repo::require_write(tx, "this role cannot delete campaigns")?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let n = dispatch!(tx, delete_in(tx, id)).map_err(map_db_err)?;
    if n == 0 {
        return Err(DomainError::NotFound);
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "deleteCampaign",
            target_type: "Campaign",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({ "name": current.name }),
        },
    )
    .await
}

fn changed_fields(fields: &[Option<&'static str>]) -> Vec<&'static str> {
    fields.iter().flatten().copied().collect()
}
