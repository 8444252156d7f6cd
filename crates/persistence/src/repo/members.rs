//! Memberships and client assignments of the context's organization.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use strata_domain::model::Membership;
use strata_domain::{ClientId, DomainError, OrgId, OrgType, Role, UserId, ValidationError};

use crate::entity::public::memberships;
use crate::entity::tenant_b::client_assignments;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest, clients};
use crate::tx::TenantTx;

/// Adds `user` to the context's organization with `role`; for account
/// managers of an agency, assigns `client_ids`. Owners and admins only.
pub async fn add(
    tx: &TenantTx,
    user: UserId,
    role: Role,
    client_ids: &[ClientId],
) -> Result<Membership, DomainError> {
    let ctx = tx.ctx();
    strata_domain::Action::AddMember.check(ctx)?;
    if role == Role::Owner && ctx.role() != Role::Owner {
        return Err(DomainError::Forbidden("only owners can add owners"));
    }
    check_assignments(tx, role, client_ids).await?;
    let now = chrono::Utc::now();
    memberships::ActiveModel {
        org_id: Set(ctx.org_id().as_uuid()),
        user_id: Set(user.as_uuid()),
        org_type: Set(ctx.org_type().as_str().to_owned()),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        email: Set(None),
        name: Set(None),
        sessions_valid_after: Set(None),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    let client_ids = dedup(client_ids);
    assign(tx, user, &client_ids, now).await?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::AddMember,
            target_type: "Membership",
            target_id: Some(user.as_uuid()),
            client_id: None,
            details: serde_json::json!({
                "role": role.as_str(),
                "clientIds": client_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    Ok(Membership {
        org_id: ctx.org_id(),
        org_type: ctx.org_type(),
        user_id: user,
        role,
        client_ids,
        created_at: now,
        email: None,
        name: None,
        sessions_valid_after: None,
        organization: None,
    })
}

/// Checks client assignments for a member with `role`: only the roles that
/// may be limited to clients, in an agency, get them, and only clients
/// visible to the caller.
async fn check_assignments(
    tx: &TenantTx,
    role: Role,
    client_ids: &[ClientId],
) -> Result<(), DomainError> {
    if client_ids.is_empty() {
        return Ok(());
    }
    if tx.ctx().org_type() != OrgType::Agency {
        return Err(ValidationError::new(
            "clientIds",
            "organizations without clients cannot assign clients",
        )
        .into());
    }
    if !role.may_be_limited() {
        return Err(ValidationError::new(
            "clientIds",
            "owners and admins see every client: only account managers, strategists and viewers are limited to clients",
        )
        .into());
    }
    if clients::by_ids(tx, client_ids).await?.len() != dedup(client_ids).len() {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// [`check_assignments`], returning the clients without duplicates.
pub(crate) async fn checked_assignments(
    tx: &TenantTx,
    role: Role,
    client_ids: &[ClientId],
) -> Result<Vec<ClientId>, DomainError> {
    check_assignments(tx, role, client_ids).await?;
    Ok(dedup(client_ids))
}

/// Assigns `client_ids` to `user`, in one statement.
async fn assign(
    tx: &TenantTx,
    user: UserId,
    client_ids: &[ClientId],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DomainError> {
    if client_ids.is_empty() {
        return Ok(());
    }
    let org = tx.ctx().org_id().as_uuid();
    client_assignments::Entity::insert_many(client_ids.iter().map(|c| {
        client_assignments::ActiveModel {
            org_id: Set(org),
            client_id: Set(c.as_uuid()),
            user_id: Set(user.as_uuid()),
            org_type: Set(OrgType::Agency.as_str().to_owned()),
            created_at: Set(now),
        }
    }))
    .exec_without_returning(tx)
    .await
    .map_err(map_db_err)?;
    Ok(())
}

fn dedup(ids: &[ClientId]) -> Vec<ClientId> {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A page of the members of the context's organization, oldest first by
/// `(created_at, user_id)` (owners and admins only), with their client
/// assignments: two statements whatever the page size.
pub async fn list(tx: &TenantTx, page: &PageRequest) -> Result<Page<Membership>, DomainError> {
    let ctx = tx.ctx();
    strata_domain::Action::ListMembers.check(ctx)?;
    let rows = super::oldest_first(
        memberships::Entity::find().filter(memberships::Column::OrgId.eq(ctx.org_id().as_uuid())),
        memberships::Column::CreatedAt,
        memberships::Column::UserId,
        page,
    )
    .all(tx)
    .await
    .map_err(map_db_err)?;
    let Page {
        items,
        has_next_page,
        has_previous_page,
    } = page.page(rows);
    Ok(Page {
        items: with_assignments(tx, items).await?,
        has_next_page,
        has_previous_page,
    })
}

/// The members of the context's organization among `users` (owners and
/// admins only), with their client assignments.
pub async fn by_users(tx: &TenantTx, users: &[UserId]) -> Result<Vec<Membership>, DomainError> {
    strata_domain::Action::ListMembers.check(tx.ctx())?;
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let rows = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(super::any_of(
            memberships::Column::UserId,
            users.iter().map(|u| u.as_uuid()),
        ))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    with_assignments(tx, rows).await
}

/// Memberships of the context's organization with their client
/// assignments, read in one statement.
async fn with_assignments(
    tx: &TenantTx,
    rows: Vec<memberships::Model>,
) -> Result<Vec<Membership>, DomainError> {
    let ctx = tx.ctx();
    let assignments = if ctx.org_type() == OrgType::Agency && !rows.is_empty() {
        client_assignments::Entity::find()
            .filter(client_assignments::Column::OrgId.eq(ctx.org_id().as_uuid()))
            .filter(client_assignments::Column::UserId.is_in(rows.iter().map(|m| m.user_id)))
            .order_by_asc(client_assignments::Column::ClientId)
            .all(tx)
            .await
            .map_err(map_db_err)?
    } else {
        Vec::new()
    };
    rows.into_iter()
        .map(|m| {
            let client_ids = assignments
                .iter()
                .filter(|a| a.user_id == m.user_id)
                .map(|a| ClientId::from_uuid(a.client_id))
                .collect();
            Ok(Membership {
                org_id: OrgId::from_uuid(m.org_id),
                org_type: ctx.org_type(),
                user_id: UserId::from_uuid(m.user_id),
                role: Role::parse(&m.role).ok_or_else(|| {
                    DomainError::Internal(format!("unknown role {}", m.role).into())
                })?,
                client_ids,
                created_at: m.created_at,
                email: m.email,
                name: m.name,
                sessions_valid_after: m.sessions_valid_after,
                organization: None,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()
}

/// How many members the context's organization has (owners and admins
/// only).
pub async fn count(tx: &TenantTx) -> Result<u64, DomainError> {
    use sea_orm::PaginatorTrait;
    crate::repo::require(tx, strata_domain::Action::ListMembers)?;
    memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .count(tx)
        .await
        .map_err(map_db_err)
}

/// How many owners the organization has, with their rows locked until the
/// transaction ends: two owners removing (or demoting) each other at once
/// are serialized by the database, and the second sees the first's change,
/// so the last owner stays whatever the timing.
async fn owners(tx: &TenantTx) -> Result<u64, DomainError> {
    use sea_orm::QuerySelect;
    let locked = memberships::Entity::find()
        .select_only()
        .column(memberships::Column::UserId)
        .filter(memberships::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(memberships::Column::Role.eq(Role::Owner.as_str()))
        .lock_exclusive()
        .into_tuple::<uuid::Uuid>()
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(u64::try_from(locked.len()).unwrap_or(u64::MAX))
}

async fn find(tx: &TenantTx, user: UserId) -> Result<memberships::Model, DomainError> {
    memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .one(tx)
        .await
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)
}

/// Changes a member's role and/or client assignments (owners and admins;
/// only owners touch owners; the last owner stays an owner).
pub async fn update(
    tx: &TenantTx,
    user: UserId,
    role: Option<Role>,
    client_ids: Option<&[ClientId]>,
) -> Result<Membership, DomainError> {
    let ctx = tx.ctx();
    strata_domain::Action::UpdateMember.check(ctx)?;
    let current = find(tx, user).await?;
    let current_role = Role::parse(&current.role)
        .ok_or_else(|| DomainError::Internal(format!("unknown role {}", current.role).into()))?;
    let new_role = role.unwrap_or(current_role);
    if (current_role == Role::Owner || new_role == Role::Owner) && ctx.role() != Role::Owner {
        return Err(DomainError::Forbidden("only owners can change owners"));
    }
    if current_role == Role::Owner && new_role != Role::Owner && owners(tx).await? <= 1 {
        return Err(ValidationError::new("role", "the last owner cannot be demoted").into());
    }
    let assigned: Vec<ClientId> = match client_ids {
        Some(ids) => dedup(ids),
        None if new_role.may_be_limited() && ctx.org_type() == OrgType::Agency => {
            client_assignments::Entity::find()
                .filter(client_assignments::Column::OrgId.eq(ctx.org_id().as_uuid()))
                .filter(client_assignments::Column::UserId.eq(user.as_uuid()))
                .all(tx)
                .await
                .map_err(map_db_err)?
                .into_iter()
                .map(|a| ClientId::from_uuid(a.client_id))
                .collect()
        }
        None => Vec::new(),
    };
    check_assignments(tx, new_role, &assigned).await?;
    let now = chrono::Utc::now();
    memberships::Entity::update_many()
        .set(memberships::ActiveModel {
            role: Set(new_role.as_str().to_owned()),
            updated_at: Set(now),
            ..Default::default()
        })
        .filter(memberships::Column::OrgId.eq(ctx.org_id().as_uuid()))
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .exec(tx)
        .await
        .map_err(map_db_err)?;
    if ctx.org_type() == OrgType::Agency {
        client_assignments::Entity::delete_many()
            .filter(client_assignments::Column::OrgId.eq(ctx.org_id().as_uuid()))
            .filter(client_assignments::Column::UserId.eq(user.as_uuid()))
            .exec(tx)
            .await
            .map_err(map_db_err)?;
        assign(tx, user, &assigned, now).await?;
    }
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::UpdateMember,
            target_type: "Membership",
            target_id: Some(user.as_uuid()),
            client_id: None,
            details: serde_json::json!({
                "role": new_role.as_str(),
                "clientIds": assigned.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    Ok(Membership {
        org_id: ctx.org_id(),
        org_type: ctx.org_type(),
        user_id: user,
        role: new_role,
        client_ids: assigned,
        created_at: current.created_at,
        email: current.email,
        name: current.name,
        sessions_valid_after: current.sessions_valid_after,
        organization: None,
    })
}

/// Removes a member (and their client assignments). Owners and admins; only
/// owners remove owners; the last owner cannot leave.
pub async fn remove(tx: &TenantTx, user: UserId) -> Result<(), DomainError> {
    let ctx = tx.ctx();
    strata_domain::Action::RemoveMember.check(ctx)?;
    let current = find(tx, user).await?;
    if current.role == Role::Owner.as_str() {
        if ctx.role() != Role::Owner {
            return Err(DomainError::Forbidden("only owners can remove owners"));
        }
        if owners(tx).await? <= 1 {
            return Err(ValidationError::new("userId", "the last owner cannot be removed").into());
        }
    }
    end_membership(tx, user, strata_domain::Action::RemoveMember, &current.role).await
}

/// Deletes `user`'s membership of the context's organization (their
/// client assignments go with it) and writes the audit row of `action`.
async fn end_membership(
    tx: &TenantTx,
    user: UserId,
    action: strata_domain::Action,
    role: &str,
) -> Result<(), DomainError> {
    memberships::Entity::delete_many()
        .filter(memberships::Column::OrgId.eq(tx.ctx().org_id().as_uuid()))
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .exec(tx)
        .await
        .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action,
            target_type: "Membership",
            target_id: Some(user.as_uuid()),
            client_id: None,
            details: serde_json::json!({ "role": role }),
        },
    )
    .await
}

/// The caller leaves the context's organization when they are one of its
/// owners (another owner must remain), in the organization's own
/// transaction, which can count them; writes the audit row. Other members
/// leave through [`crate::context::leave`].
pub async fn leave_as_owner(tx: &TenantTx) -> Result<(), DomainError> {
    leave_owning(tx, strata_domain::Action::LeaveOrganization).await
}

/// Whether the context's organization has an owner besides the caller
/// (owners and admins see them all).
pub async fn has_another_owner(tx: &TenantTx) -> Result<bool, DomainError> {
    Ok(owners(tx).await? > 1)
}

/// [`leave_as_owner`], audited as `action`.
pub(crate) async fn leave_owning(
    tx: &TenantTx,
    action: strata_domain::Action,
) -> Result<(), DomainError> {
    let ctx = tx.ctx();
    let user = ctx.actor().user_id().ok_or(DomainError::Forbidden(
        strata_domain::Action::LeaveOrganization.refusal(),
    ))?;
    if ctx.role() != Role::Owner {
        return Err(DomainError::Internal("not an owner".into()));
    }
    if owners(tx).await? <= 1 {
        return Err(ValidationError::new(
            "organization",
            "the last owner cannot leave: make another member an owner first",
        )
        .into());
    }
    end_membership(tx, user, action, Role::Owner.as_str()).await
}

/// Refuses every token of member `user` issued until now in the context's
/// organization (owners and admins; only owners name owners); writes the
/// audit row. A user signs themself out everywhere with
/// [`crate::context::revoke_own_sessions`].
pub async fn revoke_sessions(tx: &TenantTx, user: UserId) -> Result<(), DomainError> {
    let ctx = tx.ctx();
    if !ctx.can_administer() {
        return Err(DomainError::Forbidden(
            "only owners and admins can revoke another member's sessions",
        ));
    }
    let member = find(tx, user).await?;
    if member.role == Role::Owner.as_str() && ctx.role() != Role::Owner {
        return Err(DomainError::Forbidden(
            "only owners can revoke an owner's sessions",
        ));
    }
    memberships::Entity::update_many()
        .set(memberships::ActiveModel {
            sessions_valid_after: Set(Some(chrono::Utc::now())),
            ..Default::default()
        })
        .filter(memberships::Column::OrgId.eq(ctx.org_id().as_uuid()))
        .filter(memberships::Column::UserId.eq(user.as_uuid()))
        .exec(tx)
        .await
        .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::RevokeSessions,
            target_type: "User",
            target_id: Some(user.as_uuid()),
            client_id: None,
            details: serde_json::json!({ "scope": "organization" }),
        },
    )
    .await
}
