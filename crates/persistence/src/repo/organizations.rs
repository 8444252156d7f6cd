//! Organizations.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use strata_domain::model::{Membership, Organization};
use strata_domain::{
    DomainError, OrgId, OrgType, OrganizationName, Role, Slug, TenantContext, UserId,
};

use crate::context::VerifiedContext;
use crate::db::Db;
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
        monthly_token_quota: m.monthly_token_quota.and_then(|q| u64::try_from(q).ok()),
        require_mfa: m.require_mfa,
        retention_days: m.retention_days.and_then(|d| u32::try_from(d).ok()),
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

/// Creates an organization of `org_type` under a fresh id and makes `user`
/// (the signed-in caller) its owner, in a transaction of its own: a new
/// organization is its own tenant. The organization, the membership and the
/// audit row are committed together or not at all.
pub async fn create(
    db: &Db,
    user: UserId,
    org_type: OrgType,
    name: &OrganizationName,
    slug: &Slug,
    request_id: &str,
) -> Result<(Organization, Membership), DomainError> {
    create_with_id(
        db,
        user,
        OrgId::generate(),
        org_type,
        name,
        slug,
        request_id,
    )
    .await
}

/// [`create`] under a given id: only for ids that name no data yet (the
/// demo data's, derived from the slug, once the seeding found its owner is
/// not a member of it).
pub(crate) async fn create_with_id(
    db: &Db,
    user: UserId,
    org_id: OrgId,
    org_type: OrgType,
    name: &OrganizationName,
    slug: &Slug,
    request_id: &str,
) -> Result<(Organization, Membership), DomainError> {
    let ctx = VerifiedContext::for_new_organization(user, org_id, org_type, request_id);
    let tx = TenantTx::begin(db, &ctx).await?;
    match insert(&tx, name, slug).await {
        Ok(created) => {
            tx.commit().await?;
            Ok(created)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Inserts the organization named by `tx`'s context (one for a new
/// organization) and makes its user the owner.
async fn insert(
    tx: &TenantTx,
    name: &OrganizationName,
    slug: &Slug,
) -> Result<(Organization, Membership), DomainError> {
    let ctx: &TenantContext = tx.ctx();
    let user = ctx.actor().user_id().ok_or(DomainError::Forbidden(
        strata_domain::Action::CreateOrganization.refusal(),
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
        monthly_token_quota: sea_orm::ActiveValue::NotSet,
        require_mfa: Set(false),
        retention_days: Set(None),
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
        email: Set(None),
        name: Set(None),
        sessions_valid_after: Set(None),
    }
    .insert(tx)
    .await
    .map_err(map_db_err)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::CreateOrganization,
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
        email: None,
        name: None,
        sessions_valid_after: None,
        organization: Some(strata_domain::model::OrganizationSummary {
            name: name.as_str().to_owned(),
            slug: slug.as_str().to_owned(),
            require_mfa: false,
        }),
    };
    Ok((to_domain(org)?, membership))
}

/// Changes to the organization; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct OrganizationChanges {
    /// New display name.
    pub name: Option<OrganizationName>,
    /// New white-label branding, stored under `settings.branding`.
    pub branding: Option<serde_json::Value>,
    /// Whether members must sign in with a second factor (owners only).
    pub require_mfa: Option<bool>,
    /// How many days agent runs are kept: `Some(None)` keeps them for ever.
    pub retention_days: Option<Option<u32>>,
}

/// Updates the context's organization (owners and admins) and writes the
/// audit row.
pub async fn update(
    tx: &TenantTx,
    changes: OrganizationChanges,
) -> Result<Organization, DomainError> {
    crate::repo::require(tx, strata_domain::Action::UpdateOrganization)?;
    if changes.require_mfa.is_some() && tx.ctx().role() != Role::Owner {
        return Err(DomainError::Forbidden(
            "only owners can change the organization's MFA policy",
        ));
    }
    let current = current(tx).await?;
    let mut settings = current.settings.clone();
    if let (Some(branding), Some(map)) = (&changes.branding, settings.as_object_mut()) {
        map.insert("branding".to_owned(), branding.clone());
    }
    let row = organizations::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(current.id.as_uuid()),
        name: match &changes.name {
            Some(n) => Set(n.as_str().to_owned()),
            None => sea_orm::ActiveValue::NotSet,
        },
        settings: Set(settings),
        require_mfa: match changes.require_mfa {
            Some(on) => Set(on),
            None => sea_orm::ActiveValue::NotSet,
        },
        retention_days: match changes.retention_days {
            Some(days) => Set(days.map(|d| i32::try_from(d).unwrap_or(i32::MAX))),
            None => sea_orm::ActiveValue::NotSet,
        },
        updated_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .update(tx)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(sea_orm::DbErr::RecordNotUpdated) => {
            let table = crate::repo::table_of::<organizations::Entity>();
            let visible = async { self::current(tx).await.map(Some) };
            return Err(crate::repo::not_written(tx, "update", table, visible).await);
        }
        Err(e) => return Err(map_db_err(e)),
    };
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::UpdateOrganization,
            target_type: "Organization",
            target_id: Some(row.id),
            client_id: None,
            details: serde_json::json!({
                "fields": changed_fields(&[
                    changes.name.as_ref().map(|_| "name"),
                    changes.branding.as_ref().map(|_| "branding"),
                    changes.require_mfa.map(|_| "requireMfa"),
                    changes.retention_days.map(|_| "retentionDays"),
                ]),
                "requireMfa": changes.require_mfa,
                "retentionDays": changes.retention_days.flatten(),
            }),
        },
    )
    .await?;
    to_domain(row)
}

/// Erases the context's organization (owners only), whose slug the caller
/// confirms: its row, and by the foreign keys' cascades every row of every
/// table that names it, in both schemas (members' user rows stay: they may
/// belong elsewhere). Nothing of it remains to hold an audit row. What
/// the caller must tell the rest of the server once the transaction
/// commits is returned.
pub async fn delete(
    tx: &TenantTx,
    confirm_slug: &str,
) -> Result<crate::repo::Erasure, DomainError> {
    use sea_orm::{ConnectionTrait, FromQueryResult};
    crate::repo::require(tx, strata_domain::Action::DeleteOrganization)?;
    let current = current(tx).await?;
    if current.slug != confirm_slug {
        return Err(strata_domain::ValidationError::new(
            "confirmSlug",
            "must be the organization's slug",
        )
        .into());
    }
    let org = current.id.as_uuid();
    /// One id column.
    #[derive(FromQueryResult)]
    struct Run {
        id: uuid::Uuid,
    }
    let runs = match current.org_type {
        strata_domain::OrgType::Sme => "public.agent_outputs",
        strata_domain::OrgType::Agency => "tenant_b.outputs",
    };
    let unfinished = Run::find_by_statement(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        format!("SELECT id FROM {runs} WHERE org_id = $1 AND status IN ('QUEUED', 'RUNNING')"),
        [org.into()],
    ))
    .all(tx)
    .await
    .map_err(map_db_err)?;
    let members = Run::find_by_statement(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT user_id AS id FROM public.memberships WHERE org_id = $1",
        [org.into()],
    ))
    .all(tx)
    .await
    .map_err(map_db_err)?;
    let keys = Run::find_by_statement(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT id FROM public.api_keys WHERE org_id = $1",
        [org.into()],
    ))
    .all(tx)
    .await
    .map_err(map_db_err)?;
    let deleted = tx
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "DELETE FROM public.organizations WHERE id = $1",
            [org.into()],
        ))
        .await
        .map_err(map_db_err)?;
    if deleted.rows_affected() == 0 {
        let table = crate::repo::table_of::<organizations::Entity>();
        let visible = async { self::current(tx).await.map(Some) };
        return Err(crate::repo::not_written(tx, "delete", table, visible).await);
    }
    tracing::info!(org.id = %org, "organization erased");
    Ok(crate::repo::Erasure {
        runs: unfinished
            .into_iter()
            .map(|r| strata_domain::OutputId::from_uuid(r.id))
            .collect(),
        members: members
            .into_iter()
            .map(|r| strata_domain::UserId::from_uuid(r.id))
            .collect(),
        api_keys: keys.len() as u64,
    })
}

fn changed_fields(fields: &[Option<&'static str>]) -> Vec<&'static str> {
    fields.iter().flatten().copied().collect()
}

/// Sets an organization's monthly token quota for agent runs (`None`: the
/// server's default applies), as the operator's command does it: with the
/// database URL that migrates, acting as `strata_owner`, and one audit row
/// in the organization's log. `false` when no organization has that id.
pub async fn set_monthly_quota(
    db: &crate::Db,
    org: strata_domain::OrgId,
    tokens: Option<u64>,
) -> Result<bool, DomainError> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};
    let txn = db.raw().begin().await.map_err(map_db_err)?;
    if db.is_citus() {
        // The `SET LOCAL`s below reach the workers' copies of the
        // (reference) table too, each as a message of its own.
        txn.execute_unprepared(
            "SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true)",
        )
        .await
        .map_err(map_db_err)?;
    }
    txn.execute_unprepared("SET LOCAL ROLE strata_owner")
        .await
        .map_err(map_db_err)?;
    // The one organization this command may change (its policies); a
    // UUID's text needs no quoting.
    txn.execute_unprepared(&format!("SET LOCAL app.operator_org_id = '{org}'"))
        .await
        .map_err(map_db_err)?;
    let tokens = tokens.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    let updated = txn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "UPDATE public.organizations SET monthly_token_quota = $2, updated_at = now() WHERE id = $1",
            [org.as_uuid().into(), tokens.into()],
        ))
        .await
        .map_err(map_db_err)?;
    if updated.rows_affected() == 0 {
        txn.rollback().await.map_err(map_db_err)?;
        return Ok(false);
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "INSERT INTO public.audit_log (org_id, id, operation, target_type, target_id, details) \
         VALUES ($1, $2, 'setQuota', 'OrganizationQuota', $1, \
                 jsonb_build_object('monthlyTokens', $3::bigint, 'operator', session_user::text))",
        [
            org.as_uuid().into(),
            uuid::Uuid::now_v7().into(),
            tokens.into(),
        ],
    ))
    .await
    .map_err(map_db_err)?;
    txn.commit().await.map_err(map_db_err)?;
    Ok(true)
}
