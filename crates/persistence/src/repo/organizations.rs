//! Organizations.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use strata_domain::model::{Membership, Organization};
use strata_domain::{DomainError, OrgType, OrganizationName, Role, Slug, TenantContext};

use crate::entity::public::{memberships, organizations};
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::tx::TenantTx;

fn to_domain(m: organizations::Model) -> Result<Organization, DomainError> {
    let org_type = OrgType::parse(&m.org_type).ok_or_else(|| {
        DomainError::Internal(format!("unknown organization type {}", m.org_type).into())
    })?;
    Ok(Organization {
        id: strata_domain::OrgId::from_uuid(m.id),
        org_type,
        name: m.name,
        slug: m.slug,
        settings: m.settings,
        created_at: m.created_at,
    })
}

/// The context's organization.
pub async fn current(tx: &TenantTx) -> Result<Organization, DomainError> {
    let org = organizations::Entity::find()
        .filter(organizations::Column::Id.eq(tx.ctx().org_id().as_uuid()))
        .one(tx)
        .await
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)?;
    to_domain(org)
}

/// Creates the organization named by `tx`'s context (built with
/// [`TenantContext::for_new_organization`]) and makes its user the owner.
pub async fn create(
    tx: &TenantTx,
    name: &OrganizationName,
    slug: &Slug,
) -> Result<(Organization, Membership), DomainError> {
    let ctx: &TenantContext = tx.ctx();
    let user = ctx.actor().user_id().ok_or(DomainError::Forbidden(
        "only a user can create an organization",
    ))?;
    let now = chrono::Utc::now();
    let org = organizations::ActiveModel {
        id: Set(ctx.org_id().as_uuid()),
        org_type: Set(ctx.org_type().as_str().to_owned()),
        name: Set(name.as_str().to_owned()),
        slug: Set(slug.as_str().to_owned()),
        settings: Set(serde_json::json!({})),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    memberships::ActiveModel {
        org_id: Set(ctx.org_id().as_uuid()),
        user_id: Set(user.as_uuid()),
        org_type: Set(ctx.org_type().as_str().to_owned()),
        role: Set(Role::Owner.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            operation: "createOrganization",
            target_type: "Organization",
            target_id: Some(org.id),
            client_id: None,
            details: serde_json::json!({ "slug": slug.as_str(), "type": ctx.org_type().as_str() }),
        },
    )
    .await?;
    let membership = Membership {
        org_id: ctx.org_id(),
        org_type: ctx.org_type(),
        user_id: user,
        role: Role::Owner,
        client_ids: Vec::new(),
        created_at: now,
    };
    Ok((to_domain(org)?, membership))
}
