//! Personas: per SME (`public.personas`) or per agency client
//! (`tenant_b.entity_data` of kind `PERSONA`, whose `content` holds the
//! description and attributes).

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use strata_domain::model::Persona;
use strata_domain::{ClientId, DomainError, JsonDocument, OrgId, OrgType, PersonaId, PersonaName};

use crate::entity::public::personas as sme;
use crate::entity::tenant_b::entity_data as agency;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest, client_visible, content_client, require_write};
use crate::tx::TenantTx;

const KIND: &str = "PERSONA";

fn from_sme(m: sme::Model) -> Persona {
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

fn from_agency(m: agency::Model) -> Persona {
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

fn agency_content(description: Option<&str>, attributes: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "description": description, "attributes": attributes })
}

fn sme_scoped(tx: &TenantTx) -> sea_orm::Select<sme::Entity> {
    sme::Entity::find().filter(sme::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
}

fn agency_scoped(tx: &TenantTx, client: Option<ClientId>) -> sea_orm::Select<agency::Entity> {
    let mut q = agency::Entity::find()
        .filter(agency::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(agency::Column::Kind.eq(KIND));
    if let Some(c) = client {
        q = q.filter(agency::Column::ClientId.eq(c.as_uuid()));
    }
    if let strata_domain::ClientScope::Only(ids) = tx.ctx().clients() {
        q = q.filter(agency::Column::ClientId.is_in(ids.iter().map(|c| c.as_uuid())));
    }
    q
}

/// A persona by id, if visible.
pub async fn by_id(tx: &TenantTx, id: PersonaId) -> Result<Option<Persona>, DomainError> {
    match tx.ctx().org_type() {
        OrgType::Sme => Ok(sme_scoped(tx)
            .filter(sme::Column::Id.eq(id.as_uuid()))
            .one(tx)
            .await
            .map_err(map_db_err)?
            .map(from_sme)),
        OrgType::Agency => Ok(agency_scoped(tx, None)
            .filter(agency::Column::Id.eq(id.as_uuid()))
            .one(tx)
            .await
            .map_err(map_db_err)?
            .map(from_agency)),
    }
}

/// A page of personas (of one client, or of every visible client), newest
/// first.
pub async fn list(
    tx: &TenantTx,
    client: Option<ClientId>,
    page: &PageRequest,
) -> Result<Page<Persona>, DomainError> {
    if !client_visible(tx, client) {
        return Ok(Page {
            items: Vec::new(),
            has_next_page: false,
        });
    }
    let mut items: Vec<Persona> = match tx.ctx().org_type() {
        OrgType::Sme => super::newest_first(
            sme_scoped(tx),
            sme::Column::CreatedAt,
            sme::Column::Id,
            page,
        )
        .all(tx)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(from_sme)
        .collect(),
        OrgType::Agency => super::newest_first(
            agency_scoped(tx, client),
            agency::Column::CreatedAt,
            agency::Column::Id,
            page,
        )
        .all(tx)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(from_agency)
        .collect(),
    };
    let has_next_page = items.len() as u64 > page.limit;
    items.truncate(page.limit as usize);
    Ok(Page {
        items,
        has_next_page,
    })
}

/// How many personas [`list`] would page through.
pub async fn count(tx: &TenantTx, client: Option<ClientId>) -> Result<u64, DomainError> {
    if !client_visible(tx, client) {
        return Ok(0);
    }
    match tx.ctx().org_type() {
        OrgType::Sme => sme_scoped(tx).count(tx).await,
        OrgType::Agency => agency_scoped(tx, client).count(tx).await,
    }
    .map_err(map_db_err)
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

/// Creates a persona and its audit row.
pub async fn create(tx: &TenantTx, new: NewPersona) -> Result<Persona, DomainError> {
    require_write(tx, "this role cannot create personas")?;
    let client = content_client(tx, new.client_id).await?;
    let id = PersonaId::generate();
    let org = tx.ctx().org_id();
    let now = chrono::Utc::now();
    let attributes = new
        .attributes
        .map(JsonDocument::into_value)
        .unwrap_or_else(|| serde_json::json!({}));
    match client {
        None => {
            sme::Entity::insert(sme::ActiveModel {
                org_id: Set(org.as_uuid()),
                id: Set(id.as_uuid()),
                org_type: Set(OrgType::Sme.as_str().to_owned()),
                name: Set(new.name.as_str().to_owned()),
                description: Set(new.description.clone()),
                attributes: Set(attributes),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .exec_without_returning(tx)
            .await
            .map_err(map_db_err)?;
        }
        Some(c) => {
            agency::Entity::insert(agency::ActiveModel {
                org_id: Set(org.as_uuid()),
                id: Set(id.as_uuid()),
                client_id: Set(c.as_uuid()),
                org_type: Set(OrgType::Agency.as_str().to_owned()),
                kind: Set(KIND.to_owned()),
                name: Set(Some(new.name.as_str().to_owned())),
                content: Set(agency_content(new.description.as_deref(), &attributes)),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .exec_without_returning(tx)
            .await
            .map_err(map_db_err)?;
        }
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "createPersona",
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

/// Updates a visible persona and writes the audit row.
pub async fn update(
    tx: &TenantTx,
    id: PersonaId,
    changes: PersonaChanges,
) -> Result<Persona, DomainError> {
    require_write(tx, "this role cannot change personas")?;
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
    let now = chrono::Utc::now();
    let org = tx.ctx().org_id().as_uuid();
    match current.client_id {
        None => {
            sme::Entity::update_many()
                .set(sme::ActiveModel {
                    name: Set(name),
                    description: Set(description),
                    attributes: Set(attributes),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .filter(sme::Column::OrgId.eq(org))
                .filter(sme::Column::Id.eq(id.as_uuid()))
                .exec(tx)
                .await
                .map_err(map_db_err)?;
        }
        Some(_) => {
            agency::Entity::update_many()
                .set(agency::ActiveModel {
                    name: Set(Some(name)),
                    content: Set(agency_content(description.as_deref(), &attributes)),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .filter(agency::Column::OrgId.eq(org))
                .filter(agency::Column::Id.eq(id.as_uuid()))
                .filter(agency::Column::Kind.eq(KIND))
                .exec(tx)
                .await
                .map_err(map_db_err)?;
        }
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "updatePersona",
            target_type: "Persona",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({}),
        },
    )
    .await?;
    by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

/// Deletes a visible persona and writes the audit row.
pub async fn delete(tx: &TenantTx, id: PersonaId) -> Result<(), DomainError> {
    require_write(tx, "this role cannot delete personas")?;
    let current = by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    let org = tx.ctx().org_id().as_uuid();
    let deleted = match current.client_id {
        None => {
            sme::Entity::delete_many()
                .filter(sme::Column::OrgId.eq(org))
                .filter(sme::Column::Id.eq(id.as_uuid()))
                .exec(tx)
                .await
        }
        Some(_) => {
            agency::Entity::delete_many()
                .filter(agency::Column::OrgId.eq(org))
                .filter(agency::Column::Id.eq(id.as_uuid()))
                .filter(agency::Column::Kind.eq(KIND))
                .exec(tx)
                .await
        }
    }
    .map_err(map_db_err)?;
    if deleted.rows_affected == 0 {
        return Err(DomainError::NotFound);
    }
    audit::record(
        tx,
        AuditEntry {
            operation: "deletePersona",
            target_type: "Persona",
            target_id: Some(id.as_uuid()),
            client_id: current.client_id,
            details: serde_json::json!({}),
        },
    )
    .await
}
