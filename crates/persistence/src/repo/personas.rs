//! Personas: per SME (`public.personas`) or per agency client
//! (`tenant_b.entity_data` of kind `PERSONA`, whose `content` holds the
//! description and attributes). Each statement is written once over the
//! two-schema primitive and runs on the copy of the context's organization
//! type.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, PaginatorTrait, QueryFilter};
use strata_domain::model::Persona;
use strata_domain::{ClientId, DomainError, JsonDocument, OrgId, PersonaId, PersonaName};

use crate::entity::{public, tenant_b};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::two_schema::{InSchema, TwoSchemaTable, dispatch, table_name};
use crate::repo::{Page, PageRequest, content_client};
use crate::tx::TenantTx;

/// The columns both copies of a persona have.
#[derive(Clone, Copy, Debug)]
enum Personas {
    OrgId,
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
}

impl TwoSchemaTable for Personas {
    type Sme = public::personas::Entity;
    type Agency = tenant_b::entity_data::Entity;
    const ORG_ID: Self = Self::OrgId;
}

impl InSchema<Personas> for public::personas::Entity {
    const CLIENT_ID: Option<Self::Column> = None;

    fn col(c: Personas) -> Self::Column {
        use public::personas::Column as C;
        match c {
            Personas::OrgId => C::OrgId,
            Personas::Id => C::Id,
            Personas::Name => C::Name,
            Personas::CreatedAt => C::CreatedAt,
            Personas::UpdatedAt => C::UpdatedAt,
        }
    }
}

impl InSchema<Personas> for tenant_b::entity_data::Entity {
    const CLIENT_ID: Option<Self::Column> = Some(tenant_b::entity_data::Column::ClientId);
    const KIND: Option<(Self::Column, &'static str)> =
        Some((tenant_b::entity_data::Column::Kind, "PERSONA"));

    fn col(c: Personas) -> Self::Column {
        use tenant_b::entity_data::Column as C;
        match c {
            Personas::OrgId => C::OrgId,
            Personas::Id => C::Id,
            Personas::Name => C::Name,
            Personas::CreatedAt => C::CreatedAt,
            Personas::UpdatedAt => C::UpdatedAt,
        }
    }
}

/// How each copy holds what only personas have: a description and
/// attributes, in columns of their own (SMEs) or in `content` (agencies).
trait PersonaCopy: InSchema<Personas> {
    /// The persona a row of this copy holds.
    fn persona(m: Self::Model) -> Persona;

    /// The columns and values that hold `description` and `attributes`.
    fn details(
        description: Option<&str>,
        attributes: &serde_json::Value,
    ) -> Vec<(Self::Column, Expr)>;
}

impl PersonaCopy for public::personas::Entity {
    fn persona(m: public::personas::Model) -> Persona {
        Persona {
            id: PersonaId::from_uuid(m.id),
            org_id: OrgId::from_uuid(m.org_id),
            client_id: None,
            name: m.name,
            description: m.description,
            attributes: m.attributes,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn details(
        description: Option<&str>,
        attributes: &serde_json::Value,
    ) -> Vec<(Self::Column, Expr)> {
        use public::personas::Column as C;
        vec![
            (C::Description, description.map(str::to_owned).into()),
            (C::Attributes, attributes.clone().into()),
        ]
    }
}

impl PersonaCopy for tenant_b::entity_data::Entity {
    fn persona(m: tenant_b::entity_data::Model) -> Persona {
        let description = m
            .content
            .get("description")
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        let attributes = m
            .content
            .get("attributes")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        Persona {
            id: PersonaId::from_uuid(m.id),
            org_id: OrgId::from_uuid(m.org_id),
            client_id: Some(ClientId::from_uuid(m.client_id)),
            name: m.name.unwrap_or_default(),
            description,
            attributes,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    fn details(
        description: Option<&str>,
        attributes: &serde_json::Value,
    ) -> Vec<(Self::Column, Expr)> {
        let content = serde_json::json!({ "description": description, "attributes": attributes });
        vec![(tenant_b::entity_data::Column::Content, content.into())]
    }
}

async fn by_id_in<E: PersonaCopy>(tx: &TenantTx, id: PersonaId) -> Result<Option<Persona>, DbErr> {
    let m = E::find()
        .filter(E::in_scope(tx))
        .filter(E::col(Personas::Id).eq(id.as_uuid()))
        .one(tx)
        .await?;
    Ok(m.map(E::persona))
}

/// A persona by id, if visible.
pub async fn by_id(tx: &TenantTx, id: PersonaId) -> Result<Option<Persona>, DomainError> {
    dispatch!(tx, Personas, by_id_in(tx, id)).map_err(map_db_err)
}

async fn by_ids_in<E: PersonaCopy>(
    tx: &TenantTx,
    ids: &[PersonaId],
) -> Result<Vec<Persona>, DbErr> {
    let found = E::find()
        .filter(E::in_scope(tx))
        .filter(crate::repo::any_of(
            E::col(Personas::Id),
            ids.iter().map(|p| p.as_uuid()),
        ))
        .all(tx)
        .await?;
    Ok(found.into_iter().map(E::persona).collect())
}

/// Several personas by id, in one statement; invisible ones are left out.
pub async fn by_ids(tx: &TenantTx, ids: &[PersonaId]) -> Result<Vec<Persona>, DomainError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    dispatch!(tx, Personas, by_ids_in(tx, ids)).map_err(map_db_err)
}

/// Which personas to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersonaFilter {
    /// Only this client's (agencies).
    pub client_id: Option<ClientId>,
    /// Only personas created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only personas created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only personas whose name contains this text, ignoring case.
    pub search: Option<String>,
}

/// The rows of `filter` in `tx`'s scope, or `None` when its client can
/// match nothing there.
fn matching<E: PersonaCopy>(tx: &TenantTx, filter: &PersonaFilter) -> Option<sea_orm::Condition> {
    let mut cond = E::of_client(tx, filter.client_id)?;
    if let Some(at) = filter.created_after {
        cond = cond.add(E::col(Personas::CreatedAt).gte(at));
    }
    if let Some(at) = filter.created_before {
        cond = cond.add(E::col(Personas::CreatedAt).lt(at));
    }
    if let Some(search) = &filter.search {
        cond = cond.add(crate::repo::name_contains(E::col(Personas::Name), search));
    }
    Some(cond)
}

async fn list_in<E: PersonaCopy>(
    tx: &TenantTx,
    filter: &PersonaFilter,
    page: &PageRequest,
) -> Result<Page<Persona>, DbErr> {
    let Some(matching) = matching::<E>(tx, filter) else {
        return Ok(Page::empty());
    };
    let q = E::find().filter(E::in_scope(tx)).filter(matching);
    let sort = (E::col(Personas::CreatedAt), E::col(Personas::Name));
    let id = E::col(Personas::Id);
    let rows = super::in_order(q, sort, id, page).all(tx).await?;
    Ok(page.page(rows).map(E::persona))
}

/// A page of the personas `filter` lets through, in the page's order.
pub async fn list(
    tx: &TenantTx,
    filter: &PersonaFilter,
    page: &PageRequest,
) -> Result<Page<Persona>, DomainError> {
    dispatch!(tx, Personas, list_in(tx, filter, page)).map_err(map_db_err)
}

async fn count_in<E: PersonaCopy>(tx: &TenantTx, filter: &PersonaFilter) -> Result<u64, DbErr>
where
    E::Model: Send + Sync,
{
    let Some(matching) = matching::<E>(tx, filter) else {
        return Ok(0);
    };
    E::find()
        .filter(E::in_scope(tx))
        .filter(matching)
        .count(tx)
        .await
}

async fn pages_for_clients_in<E: PersonaCopy>(
    tx: &TenantTx,
    clients: &[ClientId],
    page: &PageRequest,
) -> Result<Vec<Persona>, DbErr>
where
    E::Model: sea_orm::FromQueryResult + Send + Sync,
{
    let Some(client) = E::CLIENT_ID else {
        return Ok(Vec::new());
    };
    let ids: Vec<uuid::Uuid> = clients
        .iter()
        .filter(|c| crate::repo::client_visible(tx, Some(**c)))
        .map(|c| c.as_uuid())
        .collect();
    let created = (E::col(Personas::CreatedAt), E::col(Personas::Id));
    let q = E::find().filter(E::in_scope(tx));
    let rows: Vec<E::Model> =
        crate::repo::pages_per_parent(tx, q, client, &ids, created, page).await?;
    Ok(rows.into_iter().map(E::persona).collect())
}

/// A page of each client's personas, newest first, in one statement (a
/// client outside the context's scope has none).
pub async fn pages_for_clients(
    tx: &TenantTx,
    clients: &[ClientId],
    page: &PageRequest,
) -> Result<std::collections::HashMap<ClientId, Page<Persona>>, DomainError> {
    let rows =
        dispatch!(tx, Personas, pages_for_clients_in(tx, clients, page)).map_err(map_db_err)?;
    let mut fetched: std::collections::HashMap<ClientId, Vec<Persona>> =
        std::collections::HashMap::new();
    for p in rows {
        if let Some(client) = p.client_id {
            fetched.entry(client).or_default().push(p);
        }
    }
    Ok(fetched
        .into_iter()
        .map(|(client, rows)| (client, page.page(rows)))
        .collect())
}

async fn counts_for_clients_in<E: PersonaCopy>(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<std::collections::HashMap<uuid::Uuid, u64>, DbErr>
where
    E::Model: Send + Sync,
{
    let Some(client) = E::CLIENT_ID else {
        return Ok(std::collections::HashMap::new());
    };
    let ids: Vec<uuid::Uuid> = clients.iter().map(|c| c.as_uuid()).collect();
    crate::repo::counts_per_parent(tx, E::find().filter(E::in_scope(tx)), client, &ids).await
}

/// How many personas each client has, in one statement.
pub async fn counts_for_clients(
    tx: &TenantTx,
    clients: &[ClientId],
) -> Result<std::collections::HashMap<ClientId, u64>, DomainError> {
    Ok(dispatch!(tx, Personas, counts_for_clients_in(tx, clients))
        .map_err(map_db_err)?
        .into_iter()
        .map(|(c, n)| (ClientId::from_uuid(c), n))
        .collect())
}

/// How many personas [`list`] would page through.
pub async fn count(tx: &TenantTx, filter: &PersonaFilter) -> Result<u64, DomainError> {
    dispatch!(tx, Personas, count_in(tx, filter)).map_err(map_db_err)
}

/// A new persona, validated.
#[derive(Clone, Debug)]
pub struct NewPersona {
    /// The client (required for agencies, forbidden for SMEs).
    pub client_id: Option<ClientId>,
    /// Name.
    pub name: PersonaName,
    /// Description.
    pub description: Option<String>,
    /// Attributes.
    pub attributes: Option<JsonDocument>,
}

async fn insert_in<E: PersonaCopy>(
    tx: &TenantTx,
    id: PersonaId,
    client: Option<ClientId>,
    name: &str,
    description: Option<&str>,
    attributes: &serde_json::Value,
) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let mut values = vec![
        (E::col(Personas::Id), id.as_uuid().into()),
        (E::col(Personas::Name), name.into()),
        (E::col(Personas::CreatedAt), now.into()),
        (E::col(Personas::UpdatedAt), now.into()),
    ];
    values.extend(E::details(description, attributes));
    tx.execute(&E::insert_row(tx, client, values)?).await?;
    Ok(())
}

/// Creates a persona and its audit row.
pub async fn create(tx: &TenantTx, new: NewPersona) -> Result<Persona, DomainError> {
    crate::repo::require(tx, strata_domain::Action::CreatePersona)?;
    let client = content_client(tx, new.client_id).await?;
    let id = PersonaId::generate();
    let attributes = new
        .attributes
        .map(JsonDocument::into_value)
        .unwrap_or_else(|| serde_json::json!({}));
    let description = new.description.as_deref();
    dispatch!(
        tx,
        Personas,
        insert_in(tx, id, client, new.name.as_str(), description, &attributes)
    )
    .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::CreatePersona,
            target_type: "Persona",
            target_id: Some(id.as_uuid()),
            client_id: client,
            details: serde_json::json!({}),
        },
    )
    .await?;
    by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

/// Changes to a persona; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct PersonaChanges {
    /// New name.
    pub name: Option<PersonaName>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New attributes.
    pub attributes: Option<JsonDocument>,
}

async fn update_in<E: PersonaCopy>(
    tx: &TenantTx,
    id: PersonaId,
    name: &str,
    description: Option<&str>,
    attributes: &serde_json::Value,
) -> Result<u64, DbErr> {
    let mut update = E::update_many()
        .col_expr(E::col(Personas::Name), name.into())
        .col_expr(E::col(Personas::UpdatedAt), chrono::Utc::now().into());
    for (col, value) in E::details(description, attributes) {
        update = update.col_expr(col, value);
    }
    let done = update
        .filter(E::in_scope(tx))
        .filter(E::col(Personas::Id).eq(id.as_uuid()))
        .exec(tx)
        .await?;
    Ok(done.rows_affected)
}

/// Updates a visible persona and writes the audit row.
pub async fn update(
    tx: &TenantTx,
    id: PersonaId,
    changes: PersonaChanges,
) -> Result<Persona, DomainError> {
    crate::repo::require(tx, strata_domain::Action::UpdatePersona)?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let name = changes
        .name
        .map(|n| n.as_str().to_owned())
        .unwrap_or(current.name.clone());
    let description = changes.description.unwrap_or(current.description.clone());
    let attributes = changes
        .attributes
        .map(JsonDocument::into_value)
        .unwrap_or(current.attributes.clone());
    let n = dispatch!(
        tx,
        Personas,
        update_in(tx, id, &name, description.as_deref(), &attributes)
    )
    .map_err(map_db_err)?;
    if n == 0 {
        let table = table_name::<Personas>(tx);
        return Err(crate::repo::not_written(tx, "update", table, by_id(tx, id)).await);
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::UpdatePersona,
            target_type: "Persona",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({}),
        },
    )
    .await?;
    by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

async fn delete_in<E: PersonaCopy>(tx: &TenantTx, id: PersonaId) -> Result<u64, DbErr> {
    let done = E::delete_many()
        .filter(E::in_scope(tx))
        .filter(E::col(Personas::Id).eq(id.as_uuid()))
        .exec(tx)
        .await?;
    Ok(done.rows_affected)
}

/// Deletes a visible persona and writes the audit row.
pub async fn delete(tx: &TenantTx, id: PersonaId) -> Result<(), DomainError> {
    crate::repo::require(tx, strata_domain::Action::DeletePersona)?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let n = dispatch!(tx, Personas, delete_in(tx, id)).map_err(map_db_err)?;
    if n == 0 {
        let table = table_name::<Personas>(tx);
        return Err(crate::repo::not_written(tx, "delete", table, by_id(tx, id)).await);
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::DeletePersona,
            target_type: "Persona",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({}),
        },
    )
    .await
}
