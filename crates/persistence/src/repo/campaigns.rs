//! Campaigns of both tenant types (`public.campaigns` for SMEs,
//! `tenant_b.campaigns` for agencies): each statement written once over the
//! two-schema primitive, with typed columns, and run on the copy of the
//! context's organization type.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, FromQueryResult, QueryFilter, QuerySelect};
use strata_domain::model::{Campaign, CampaignStatus};
use strata_domain::{CampaignId, CampaignName, ClientId, DomainError, OrgId};
use uuid::Uuid;

use crate::entity::{public, tenant_b};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::two_schema::{InSchema, TwoSchemaTable, dispatch, table_name};
use crate::repo::{Page, PageRequest};
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CampaignFilter {
    /// Only this client's (agencies).
    pub client_id: Option<ClientId>,
    /// Only campaigns in one of these states (any state when empty).
    pub status: Vec<CampaignStatus>,
    /// Only campaigns created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only campaigns created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only campaigns whose name contains this text, ignoring case.
    pub search: Option<String>,
}

/// The rows of `filter` in `tx`'s scope, or `None` when its client can
/// match nothing there.
fn matching<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    filter: &CampaignFilter,
) -> Option<sea_orm::Condition> {
    let mut cond = E::of_client(tx, filter.client_id)?;
    if !filter.status.is_empty() {
        cond = cond.add(E::col(Campaigns::Status).is_in(filter.status.iter().map(|s| s.as_str())));
    }
    if let Some(at) = filter.created_after {
        cond = cond.add(E::col(Campaigns::CreatedAt).gte(at));
    }
    if let Some(at) = filter.created_before {
        cond = cond.add(E::col(Campaigns::CreatedAt).lt(at));
    }
    if let Some(search) = &filter.search {
        cond = cond.add(crate::repo::name_contains(E::col(Campaigns::Name), search));
    }
    Some(cond)
}

/// The columns both copies of a campaign have.
#[derive(Clone, Copy, Debug)]
enum Campaigns {
    OrgId,
    Id,
    Name,
    Objective,
    Status,
    CreatedAt,
    UpdatedAt,
}

impl TwoSchemaTable for Campaigns {
    type Sme = public::campaigns::Entity;
    type Agency = tenant_b::campaigns::Entity;
    const ORG_ID: Self = Self::OrgId;
}

impl InSchema<Campaigns> for public::campaigns::Entity {
    const CLIENT_ID: Option<Self::Column> = None;

    fn col(c: Campaigns) -> Self::Column {
        use public::campaigns::Column as C;
        match c {
            Campaigns::OrgId => C::OrgId,
            Campaigns::Id => C::Id,
            Campaigns::Name => C::Name,
            Campaigns::Objective => C::Objective,
            Campaigns::Status => C::Status,
            Campaigns::CreatedAt => C::CreatedAt,
            Campaigns::UpdatedAt => C::UpdatedAt,
        }
    }
}

impl InSchema<Campaigns> for tenant_b::campaigns::Entity {
    const CLIENT_ID: Option<Self::Column> = Some(tenant_b::campaigns::Column::ClientId);

    fn col(c: Campaigns) -> Self::Column {
        use tenant_b::campaigns::Column as C;
        match c {
            Campaigns::OrgId => C::OrgId,
            Campaigns::Id => C::Id,
            Campaigns::Name => C::Name,
            Campaigns::Objective => C::Objective,
            Campaigns::Status => C::Status,
            Campaigns::CreatedAt => C::CreatedAt,
            Campaigns::UpdatedAt => C::UpdatedAt,
        }
    }
}

/// The columns a [`Row`] reads (with `client_id`).
const ROW: [Campaigns; 7] = [
    Campaigns::OrgId,
    Campaigns::Id,
    Campaigns::Name,
    Campaigns::Objective,
    Campaigns::Status,
    Campaigns::CreatedAt,
    Campaigns::UpdatedAt,
];

async fn by_id_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    id: CampaignId,
) -> Result<Option<Campaign>, DbErr> {
    let row = E::select(tx, &ROW)
        .filter(E::col(Campaigns::Id).eq(id.as_uuid()))
        .into_model::<Row>()
        .one(tx)
        .await?;
    Ok(row.map(Campaign::from))
}

/// A campaign by id, if visible to the context.
pub async fn by_id(tx: &TenantTx, id: CampaignId) -> Result<Option<Campaign>, DomainError> {
    dispatch!(tx, Campaigns, by_id_in(tx, id)).map_err(map_db_err)
}

async fn by_ids_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    ids: &[CampaignId],
) -> Result<Vec<Campaign>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = E::select(tx, &ROW)
        .filter(E::col(Campaigns::Id).is_in(ids.iter().map(|c| c.as_uuid())))
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(rows.into_iter().map(Campaign::from).collect())
}

/// Several campaigns by id (for loaders); invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[CampaignId]) -> Result<Vec<Campaign>, DomainError> {
    dispatch!(tx, Campaigns, by_ids_in(tx, ids)).map_err(map_db_err)
}

async fn list_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    filter: &CampaignFilter,
    page: &PageRequest,
) -> Result<Page<Campaign>, DbErr> {
    let Some(matching) = matching::<E>(tx, filter) else {
        return Ok(Page::empty());
    };
    let q = E::select(tx, &ROW).filter(matching);
    let sort = (E::col(Campaigns::CreatedAt), E::col(Campaigns::Name));
    let id = E::col(Campaigns::Id);
    let rows = super::in_order(q, sort, id, page)
        .into_model::<Row>()
        .all(tx)
        .await?;
    Ok(page.page(rows).map(Campaign::from))
}

/// A page of campaigns, in the page's order.
pub async fn list(
    tx: &TenantTx,
    filter: &CampaignFilter,
    page: &PageRequest,
) -> Result<Page<Campaign>, DomainError> {
    dispatch!(tx, Campaigns, list_in(tx, filter, page)).map_err(map_db_err)
}

async fn count_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    filter: &CampaignFilter,
) -> Result<u64, DbErr> {
    let Some(matching) = matching::<E>(tx, filter) else {
        return Ok(0);
    };
    let n: Option<i64> = E::find()
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .filter(E::in_scope(tx))
        .filter(matching)
        .into_tuple()
        .one(tx)
        .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

async fn pages_for_clients_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    clients: &[ClientId],
    page: &PageRequest,
) -> Result<Vec<Row>, DbErr> {
    let Some(client) = E::CLIENT_ID else {
        return Ok(Vec::new());
    };
    let ids: Vec<Uuid> = clients
        .iter()
        .filter(|c| crate::repo::client_visible(tx, Some(**c)))
        .map(|c| c.as_uuid())
        .collect();
    let created = (E::col(Campaigns::CreatedAt), E::col(Campaigns::Id));
    crate::repo::pages_per_parent(tx, E::select(tx, &ROW), client, &ids, created, page).await
}

/// A page of each client's campaigns, newest first, in one statement (a
/// client outside the context's scope has none).
pub async fn pages_for_clients(
    tx: &TenantTx,
    clients: &[ClientId],
    page: &PageRequest,
) -> Result<std::collections::HashMap<ClientId, Page<Campaign>>, DomainError> {
    let rows =
        dispatch!(tx, Campaigns, pages_for_clients_in(tx, clients, page)).map_err(map_db_err)?;
    let mut fetched: std::collections::HashMap<ClientId, Vec<Campaign>> =
        std::collections::HashMap::new();
    for row in rows {
        let c = Campaign::from(row);
        if let Some(client) = c.client_id {
            fetched.entry(client).or_default().push(c);
        }
    }
    Ok(fetched
        .into_iter()
        .map(|(client, rows)| (client, page.page(rows)))
        .collect())
}

async fn counts_for_clients_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<std::collections::HashMap<Uuid, u64>, DbErr> {
    let Some(client) = E::CLIENT_ID else {
        return Ok(std::collections::HashMap::new());
    };
    let ids: Vec<Uuid> = clients.iter().map(|c| c.as_uuid()).collect();
    crate::repo::counts_per_parent(tx, E::find().filter(E::in_scope(tx)), client, &ids).await
}

/// How many campaigns each client has, in one statement.
pub async fn counts_for_clients(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<std::collections::HashMap<ClientId, u64>, DomainError> {
    Ok(dispatch!(tx, Campaigns, counts_for_clients_in(tx, clients))
        .map_err(map_db_err)?
        .into_iter()
        .map(|(c, n)| (ClientId::from_uuid(c), n))
        .collect())
}

/// How many campaigns match `filter`.
pub async fn count(tx: &TenantTx, filter: &CampaignFilter) -> Result<u64, DomainError> {
    dispatch!(tx, Campaigns, count_in(tx, filter)).map_err(map_db_err)
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

async fn insert_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    id: CampaignId,
    new: &NewCampaign,
) -> Result<Option<Campaign>, DbErr> {
    let now = chrono::Utc::now();
    let insert = E::insert_row(
        tx,
        new.client_id,
        [
            (E::col(Campaigns::Id), id.as_uuid().into()),
            (E::col(Campaigns::Name), new.name.as_str().into()),
            (E::col(Campaigns::Objective), new.objective.clone().into()),
            (E::col(Campaigns::CreatedAt), now.into()),
            (E::col(Campaigns::UpdatedAt), now.into()),
        ],
    )?;
    tx.execute(&insert).await?;
    by_id_in::<E>(tx, id).await
}

/// Creates a campaign and its audit row.
pub async fn create(tx: &TenantTx, new: NewCampaign) -> Result<Campaign, DomainError> {
    crate::repo::require(tx, strata_domain::Action::CreateCampaign)?;
    crate::repo::content_client(tx, new.client_id).await?;
    let id = CampaignId::generate();
    let created = dispatch!(tx, Campaigns, insert_in(tx, id, &new))
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::CreateCampaign,
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

async fn update_in<E: InSchema<Campaigns>>(
    tx: &TenantTx,
    id: CampaignId,
    changes: &CampaignChanges,
) -> Result<u64, DbErr> {
    let mut update =
        E::update_many().col_expr(E::col(Campaigns::UpdatedAt), chrono::Utc::now().into());
    if let Some(name) = &changes.name {
        update = update.col_expr(E::col(Campaigns::Name), name.as_str().into());
    }
    if let Some(objective) = &changes.objective {
        update = update.col_expr(E::col(Campaigns::Objective), objective.clone().into());
    }
    if let Some(status) = changes.status {
        update = update.col_expr(E::col(Campaigns::Status), status.as_str().into());
    }
    let done = update
        .filter(E::in_scope(tx))
        .filter(E::col(Campaigns::Id).eq(id.as_uuid()))
        .exec(tx)
        .await?;
    Ok(done.rows_affected)
}

/// Updates a visible campaign and writes the audit row.
pub async fn update(
    tx: &TenantTx,
    id: CampaignId,
    changes: CampaignChanges,
) -> Result<Campaign, DomainError> {
    crate::repo::require(tx, strata_domain::Action::UpdateCampaign)?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let n = dispatch!(tx, Campaigns, update_in(tx, id, &changes)).map_err(map_db_err)?;
    if n == 0 {
        let table = table_name::<Campaigns>(tx);
        return Err(crate::repo::not_written(tx, "update", table, by_id(tx, id)).await);
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::UpdateCampaign,
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

async fn delete_in<E: InSchema<Campaigns>>(tx: &TenantTx, id: CampaignId) -> Result<u64, DbErr> {
    let done = E::delete_many()
        .filter(E::in_scope(tx))
        .filter(E::col(Campaigns::Id).eq(id.as_uuid()))
        .exec(tx)
        .await?;
    Ok(done.rows_affected)
}

/// Deletes a visible campaign (and, by cascade, its runs and outputs) and
/// writes the audit row.
pub async fn delete(tx: &TenantTx, id: CampaignId) -> Result<(), DomainError> {
    crate::repo::require(tx, strata_domain::Action::DeleteCampaign)?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let n = dispatch!(tx, Campaigns, delete_in(tx, id)).map_err(map_db_err)?;
    if n == 0 {
        let table = table_name::<Campaigns>(tx);
        return Err(crate::repo::not_written(tx, "delete", table, by_id(tx, id)).await);
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::DeleteCampaign,
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
