//! An agency's clients (`tenant_b.workspace_entities`). SME contexts have
//! none: every function answers as if no client exists.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use strata_domain::model::Client;
use strata_domain::{ClientId, ClientName, DomainError, OrgId, OrgType, OutputId, Slug};

use crate::repo::Erasure;

use crate::entity::tenant_b::workspace_entities as clients;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest, any_of, limited_clients};
use crate::tx::TenantTx;

fn to_domain(m: clients::Model) -> Client {
    Client {
        id: ClientId::from_uuid(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        name: m.name,
        slug: m.slug,
        archived_at: m.archived_at,
        created_at: m.created_at,
        branding: m.branding,
    }
}

fn is_agency(tx: &TenantTx) -> bool {
    tx.ctx().org_type() == OrgType::Agency
}

/// The context's organization's clients, narrowed to the clients it may
/// see when it is limited to some.
fn scoped(tx: &TenantTx) -> sea_orm::Select<clients::Entity> {
    let q = clients::Entity::find().filter(clients::Column::OrgId.eq(tx.ctx().org_id().as_uuid()));
    match limited_clients(tx) {
        Some(ids) => q.filter(any_of(clients::Column::Id, ids)),
        None => q,
    }
}

/// A client by id, if visible to the context.
pub async fn by_id(tx: &TenantTx, id: ClientId) -> Result<Option<Client>, DomainError> {
    if !is_agency(tx) || !tx.ctx().clients().includes(id) {
        return Ok(None);
    }
    Ok(scoped(tx)
        .filter(clients::Column::Id.eq(id.as_uuid()))
        .one(tx)
        .await
        .map_err(map_db_err)?
        .map(to_domain))
}

/// Several clients by id (for loaders); invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[ClientId]) -> Result<Vec<Client>, DomainError> {
    if !is_agency(tx) || ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(scoped(tx)
        .filter(clients::Column::Id.is_in(ids.iter().map(|c| c.as_uuid())))
        .all(tx)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(to_domain)
        .collect())
}

/// A client by slug, if visible to the context.
pub async fn by_slug(tx: &TenantTx, slug: &Slug) -> Result<Option<Client>, DomainError> {
    if !is_agency(tx) {
        return Ok(None);
    }
    let found = scoped(tx)
        .filter(clients::Column::Slug.eq(slug.as_str()))
        .one(tx)
        .await
        .map_err(map_db_err)?
        .map(to_domain);
    Ok(found.filter(|c| tx.ctx().clients().includes(c.id)))
}

/// Which clients to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientFilter {
    /// Archived clients too.
    pub include_archived: bool,
    /// Only clients created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only clients created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only clients whose name contains this text, ignoring case.
    pub search: Option<String>,
}

/// The context's clients that `filter` lets through.
fn listed(tx: &TenantTx, filter: &ClientFilter) -> sea_orm::Select<clients::Entity> {
    let mut q = scoped(tx);
    if !filter.include_archived {
        q = q.filter(clients::Column::ArchivedAt.is_null());
    }
    if let Some(at) = filter.created_after {
        q = q.filter(clients::Column::CreatedAt.gte(at));
    }
    if let Some(at) = filter.created_before {
        q = q.filter(clients::Column::CreatedAt.lt(at));
    }
    if let Some(search) = &filter.search {
        q = q.filter(crate::repo::name_contains(clients::Column::Name, search));
    }
    q
}

/// A page of the context's clients that `filter` lets through, in the
/// page's order.
pub async fn list(
    tx: &TenantTx,
    page: &PageRequest,
    filter: &ClientFilter,
) -> Result<Page<Client>, DomainError> {
    if !is_agency(tx) {
        return Ok(Page::empty());
    }
    let rows = super::in_order(
        listed(tx, filter),
        (clients::Column::CreatedAt, clients::Column::Name),
        clients::Column::Id,
        page,
    )
    .all(tx)
    .await
    .map_err(map_db_err)?;
    Ok(page.page(rows).map(to_domain))
}

/// How many clients the context sees through `filter`.
pub async fn count(tx: &TenantTx, filter: &ClientFilter) -> Result<u64, DomainError> {
    if !is_agency(tx) {
        return Ok(0);
    }
    listed(tx, filter).count(tx).await.map_err(map_db_err)
}

/// Creates a client (agencies only; administrators only).
pub async fn create(tx: &TenantTx, name: &ClientName, slug: &Slug) -> Result<Client, DomainError> {
    if !is_agency(tx) {
        return Err(DomainError::Forbidden("only agencies have clients"));
    }
    crate::repo::require(tx, strata_domain::Action::CreateClient)?;
    let now = chrono::Utc::now();
    let id = ClientId::generate();
    let row = clients::ActiveModel {
        org_id: Set(tx.ctx().org_id().as_uuid()),
        id: Set(id.as_uuid()),
        org_type: Set(OrgType::Agency.as_str().to_owned()),
        name: Set(name.as_str().to_owned()),
        slug: Set(slug.as_str().to_owned()),
        archived_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        branding: Set(serde_json::json!({})),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::CreateClient,
            target_type: "Client",
            target_id: Some(row.id),
            client_id: Some(id),
            details: serde_json::json!({ "slug": slug.as_str() }),
        },
    )
    .await?;
    Ok(to_domain(row))
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ClientChanges {
    /// New name.
    pub name: Option<ClientName>,
    /// New slug (unique within the agency).
    pub slug: Option<Slug>,
    /// Archive (`true`) or restore (`false`).
    pub archived: Option<bool>,
    /// New white-label branding of the client's own material (replaces
    /// the current one; an empty object falls back to the agency's).
    pub branding: Option<serde_json::Value>,
}

/// Updates, archives or restores a visible client (administrators only) as
/// `action`, which names its audit row.
pub async fn update(
    tx: &TenantTx,
    id: ClientId,
    changes: ClientChanges,
    action: strata_domain::Action,
) -> Result<Client, DomainError> {
    if !is_agency(tx) {
        return Err(DomainError::NotFound);
    }
    crate::repo::require(tx, action)?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let now = chrono::Utc::now();
    let mut row = clients::ActiveModel {
        org_id: sea_orm::ActiveValue::Unchanged(current.org_id.as_uuid()),
        id: sea_orm::ActiveValue::Unchanged(id.as_uuid()),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(name) = &changes.name {
        row.name = Set(name.as_str().to_owned());
    }
    if let Some(slug) = &changes.slug {
        row.slug = Set(slug.as_str().to_owned());
    }
    if let Some(branding) = &changes.branding {
        row.branding = Set(branding.clone());
    }
    match changes.archived {
        Some(true) if current.archived_at.is_none() => row.archived_at = Set(Some(now)),
        Some(false) => row.archived_at = Set(None),
        _ => {}
    }
    let updated = match row.update(tx).await {
        Ok(updated) => updated,
        Err(sea_orm::DbErr::RecordNotUpdated) => {
            let table = crate::repo::table_of::<clients::Entity>();
            return Err(crate::repo::not_written(tx, "update", table, by_id(tx, id)).await);
        }
        Err(e) => return Err(map_db_err(e)),
    };
    audit::record(
        tx,
        AuditEntry {
            action,
            target_type: "Client",
            target_id: Some(id.as_uuid()),
            client_id: Some(id),
            details: serde_json::json!({
                "slug": updated.slug,
                "branding": changes.branding.is_some(),
            }),
        },
    )
    .await?;
    Ok(to_domain(updated))
}

/// Erases a visible client (administrators only) in the caller's
/// transaction: its row, everything that refers to it (by the foreign
/// keys' cascades: campaigns, runs and outputs, brand guidelines, personas,
/// assignments, reporting logins), the API keys limited to it and the
/// audit rows about it, then writes one tombstone audit row naming only
/// its id. What the caller must tell the rest of the server once the
/// transaction commits is returned.
///
/// The client's row is locked first: content written for it concurrently
/// waits on that lock (its foreign key check) and then fails, so it
/// leaves no row or audit row behind.
pub async fn delete(tx: &TenantTx, id: ClientId) -> Result<Erasure, DomainError> {
    use crate::entity::public::audit_log;
    use crate::entity::tenant_b::{client_assignments, outputs};
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    if !is_agency(tx) {
        return Err(DomainError::NotFound);
    }
    crate::repo::require(tx, strata_domain::Action::DeleteClient)?;
    let org = tx.ctx().org_id().as_uuid();
    let locked = tx
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT id FROM tenant_b.workspace_entities WHERE org_id = $1 AND id = $2 FOR UPDATE",
            [org.into(), id.as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?;
    if locked.is_none() || !tx.ctx().clients().includes(id) {
        return Err(DomainError::NotFound);
    }
    let runs: Vec<uuid::Uuid> = outputs::Entity::find()
        .select_only()
        .column(outputs::Column::Id)
        .filter(outputs::Column::OrgId.eq(org))
        .filter(outputs::Column::ClientId.eq(id.as_uuid()))
        .filter(outputs::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .into_tuple()
        .all(tx)
        .await
        .map_err(map_db_err)?;
    let members: Vec<uuid::Uuid> = client_assignments::Entity::find()
        .select_only()
        .column(client_assignments::Column::UserId)
        .filter(client_assignments::Column::OrgId.eq(org))
        .filter(client_assignments::Column::ClientId.eq(id.as_uuid()))
        .into_tuple()
        .all(tx)
        .await
        .map_err(map_db_err)?;
    audit_log::Entity::delete_many()
        .filter(audit_log::Column::OrgId.eq(org))
        .filter(audit_log::Column::ClientId.eq(id.as_uuid()))
        .exec(tx)
        .await
        .map_err(map_db_err)?;
    // Not left to a cascade: on Citus no foreign key joins the keys to
    // the clients.
    // Keys limited to this client alone go; keys limited to others too
    // forget it.
    let deleted_keys = tx
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "DELETE FROM public.api_keys WHERE org_id = $1 AND client_ids = ARRAY[$2::uuid]",
            [org.into(), id.as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?
        .rows_affected();
    let narrowed_keys = narrow(tx, "public.api_keys", org, id.as_uuid(), true).await?;
    let keys = deleted_keys + narrowed_keys;
    // Its exports go with their files, and so do the organization's:
    // they hold its rows too.
    tx.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "DELETE FROM public.data_exports WHERE org_id = $1 AND (client_id = $2 OR client_id IS NULL)",
        [org.into(), id.as_uuid().into()],
    ))
    .await
    .map_err(map_db_err)?;
    // Invitations limited to this client alone go; others forget it.
    tx.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "DELETE FROM public.invitations WHERE org_id = $1 AND client_ids = ARRAY[$2::uuid]",
        [org.into(), id.as_uuid().into()],
    ))
    .await
    .map_err(map_db_err)?;
    narrow(tx, "public.invitations", org, id.as_uuid(), false).await?;
    let deleted = clients::Entity::delete_many()
        .filter(clients::Column::OrgId.eq(org))
        .filter(clients::Column::Id.eq(id.as_uuid()))
        .exec(tx)
        .await
        .map_err(map_db_err)?;
    if deleted.rows_affected == 0 {
        let table = crate::repo::table_of::<clients::Entity>();
        return Err(crate::repo::not_written(tx, "delete", table, by_id(tx, id)).await);
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::DeleteClient,
            target_type: "Client",
            target_id: Some(id.as_uuid()),
            client_id: Some(id),
            details: serde_json::json!({}),
        },
    )
    .await?;
    Ok(Erasure {
        runs: runs.into_iter().map(OutputId::from_uuid).collect(),
        members: members
            .into_iter()
            .map(strata_domain::UserId::from_uuid)
            .collect(),
        api_keys: keys,
    })
}

/// Takes `client` out of the `client_ids` of `table`'s rows in `org` that
/// name it among others (and, for keys, keeps `client_id` their first);
/// returns how many rows changed. The new lists are computed here and
/// written row by row: Citus plans no subscript of a computed array in a
/// reference table's `UPDATE`.
async fn narrow(
    tx: &TenantTx,
    table: &'static str,
    org: uuid::Uuid,
    client: uuid::Uuid,
    first_column: bool,
) -> Result<u64, DomainError> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            format!("SELECT id, client_ids FROM {table} WHERE org_id = $1 AND $2::uuid = ANY(client_ids) FOR UPDATE"),
            [org.into(), client.into()],
        ))
        .await
        .map_err(map_db_err)?;
    let mut changed = 0;
    for row in rows {
        let id: uuid::Uuid = row.try_get("", "id").map_err(map_db_err)?;
        let ids: Vec<uuid::Uuid> = row.try_get("", "client_ids").map_err(map_db_err)?;
        let kept: Vec<uuid::Uuid> = ids.into_iter().filter(|c| *c != client).collect();
        if kept.is_empty() {
            // Only this client was left (a concurrent erasure took the
            // others): the row goes, never widened to every client.
            changed += tx
                .execute_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    format!("DELETE FROM {table} WHERE org_id = $1 AND id = $2"),
                    [org.into(), id.into()],
                ))
                .await
                .map_err(map_db_err)?
                .rows_affected();
            continue;
        }
        let list = crate::array::uuid_array(kept.iter().copied());
        let sql = if first_column {
            format!(
                "UPDATE {table} SET client_ids = $3::uuid[], client_id = $4 WHERE org_id = $1 AND id = $2"
            )
        } else {
            format!("UPDATE {table} SET client_ids = $3::uuid[] WHERE org_id = $1 AND id = $2")
        };
        let mut values: Vec<sea_orm::Value> = vec![org.into(), id.into(), list.into()];
        if first_column {
            values.push(kept.first().copied().into());
        }
        changed += tx
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                values,
            ))
            .await
            .map_err(map_db_err)?
            .rows_affected();
    }
    Ok(changed)
}
