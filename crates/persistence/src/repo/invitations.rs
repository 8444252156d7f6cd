//! Invitations to the context's organization, by e-mail (owners and admins).
//! A user whose token carries the invited address, verified by their
//! identity provider, accepts one on their next request or with
//! `acceptInvitation` (see [`crate::auth::accept_invitations`], which runs
//! as `app_auth` and may see only invitations to that address).
//!
//! Raw SQL, on purpose: the invited clients are an array column, read back
//! as text.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use strata_domain::model::{Invitation, InvitationStatus};
use strata_domain::{ClientId, DomainError, InvitationId, OrgId, Role, UserId, ValidationError};
use uuid::Uuid;

use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest};
use crate::tx::TenantTx;

/// How long an invitation may be accepted.
pub const VALID_FOR_DAYS: i64 = 7;

/// Whether `s` is shaped like an e-mail address an invitation can name:
/// one `@` between a local part and a domain with a dot, ASCII, no space,
/// at most 320 characters.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 320
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.bytes().all(|b| b.is_ascii_graphic())
}

const COLUMNS: &str = "org_id, id, email, role, array_to_string(client_ids, ',') AS client_ids, \
                       invited_by, created_at, expires_at, revoked_at, accepted_at, accepted_by";

#[derive(Debug, FromQueryResult)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    email: String,
    role: String,
    client_ids: String,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
    accepted_by: Option<Uuid>,
}

impl TryFrom<Row> for Invitation {
    type Error = DomainError;

    fn try_from(r: Row) -> Result<Self, DomainError> {
        let client_ids = r
            .client_ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Uuid>().map(ClientId::from_uuid))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DomainError::Internal(Box::new(e)))?;
        Ok(Invitation {
            id: InvitationId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            email: r.email,
            role: Role::parse(&r.role)
                .ok_or_else(|| DomainError::Internal(format!("unknown role {}", r.role).into()))?,
            client_ids,
            invited_by: r.invited_by.map(UserId::from_uuid),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            accepted_at: r.accepted_at,
            accepted_by: r.accepted_by.map(UserId::from_uuid),
        })
    }
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn rows(
    tx: &TenantTx,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<Invitation>, DomainError> {
    Row::find_by_statement(statement(sql, values))
        .all(tx)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(Invitation::try_from)
        .collect()
}

/// Invites `email` to the context's organization with `role`, limited to
/// `client_ids` (agencies; the roles that may be limited), valid for a
/// week; writes the audit row. Owners are added with `addMember`, never
/// invited. An address with a pending invitation, or of a member, is a
/// conflict.
pub async fn create(
    tx: &TenantTx,
    email: &str,
    role: Role,
    client_ids: &[ClientId],
) -> Result<Invitation, DomainError> {
    let ctx = tx.ctx();
    crate::repo::require(tx, strata_domain::Action::InviteMember)?;
    let email = email.trim().to_lowercase();
    if !is_address(&email) {
        return Err(ValidationError::new("email", "not an e-mail address").into());
    }
    if role == Role::Owner {
        return Err(ValidationError::new(
            "role",
            "owners are not invited: invite as ADMIN, or add a known user with addMember",
        )
        .into());
    }
    let client_ids = super::members::checked_assignments(tx, role, client_ids).await?;
    let org = ctx.org_id().as_uuid();
    let member = tx
        .query_one_raw(statement(
            "SELECT 1 AS one FROM public.memberships WHERE org_id = $1 AND lower(email) = $2 LIMIT 1",
            vec![org.into(), email.clone().into()],
        ))
        .await
        .map_err(map_db_err)?;
    if member.is_some() {
        return Err(DomainError::Conflict {
            field: "email",
            message: "already a member of this organization".into(),
        });
    }
    // An expired invitation to the same address did nothing: the new one
    // takes its place. (Times are parameters: Citus evaluates no `now()`
    // in a write to a reference table.)
    let now = Utc::now();
    tx.execute_raw(statement(
        "DELETE FROM public.invitations WHERE org_id = $1 AND email = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $3",
        vec![org.into(), email.clone().into(), now.into()],
    ))
    .await
    .map_err(map_db_err)?;
    let id = Uuid::now_v7();
    let sql = "INSERT INTO public.invitations \
             (org_id, id, org_type, email, role, client_ids, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6::uuid[], $7, $8, $9) \
         ON CONFLICT (org_id, email) WHERE accepted_at IS NULL AND revoked_at IS NULL DO NOTHING \
         RETURNING id";
    let inserted = tx
        .query_one_raw(statement(
            sql,
            vec![
                org.into(),
                id.into(),
                ctx.org_type().as_str().to_owned().into(),
                email.into(),
                role.as_str().to_owned().into(),
                crate::array::uuid_array(client_ids.iter().map(|c| c.as_uuid())).into(),
                ctx.actor().user_id().map(|u| u.as_uuid()).into(),
                now.into(),
                (now + Duration::days(VALID_FOR_DAYS)).into(),
            ],
        ))
        .await
        .map_err(map_db_err)?;
    if inserted.is_none() {
        return Err(DomainError::Conflict {
            field: "email",
            message: "this address already has a pending invitation".into(),
        });
    }
    let created = one(tx, org, id).await?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::InviteMember,
            target_type: "Invitation",
            target_id: Some(id),
            client_id: None,
            details: serde_json::json!({
                "role": role.as_str(),
                "clientIds": client_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    Ok(created)
}

/// A page of the organization's invitations, newest first, all or those
/// in `status` (owners and admins).
pub async fn list(
    tx: &TenantTx,
    page: &PageRequest,
    status: Option<InvitationStatus>,
) -> Result<Page<Invitation>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ListInvitations)?;
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX - 1);
    let mut values: Vec<Value> = vec![tx.ctx().org_id().as_uuid().into(), (limit + 1).into()];
    let mut bounds = String::from(in_status(status));
    bounds.push_str(&crate::repo::newest_first_bounds(page, &mut values));
    let order = if page.fetch_desc() { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS} FROM public.invitations WHERE org_id = $1{bounds} \
         ORDER BY created_at {order}, id {order} LIMIT $2"
    );
    let found = rows(tx, &sql, values).await?;
    Ok(page.page(found))
}

/// The condition that keeps the invitations in `status` (all: none).
fn in_status(status: Option<InvitationStatus>) -> &'static str {
    match status {
        None => "",
        Some(InvitationStatus::Accepted) => " AND accepted_at IS NOT NULL",
        Some(InvitationStatus::Revoked) => " AND accepted_at IS NULL AND revoked_at IS NOT NULL",
        Some(InvitationStatus::Expired) => {
            " AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= now()"
        }
        Some(InvitationStatus::Pending) => {
            " AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
        }
    }
}

/// How many of the organization's invitations are in `status` (all:
/// `None`), for owners and admins.
pub async fn count(tx: &TenantTx, status: Option<InvitationStatus>) -> Result<u64, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ListInvitations)?;
    let sql = format!(
        "SELECT count(*) AS n FROM public.invitations WHERE org_id = $1{}",
        in_status(status)
    );
    let row = tx
        .query_one_raw(statement(&sql, vec![tx.ctx().org_id().as_uuid().into()]))
        .await
        .map_err(map_db_err)?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n").map_err(map_db_err)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Revokes a pending invitation (owners and admins) and writes the audit
/// row; an accepted or already revoked one is left as it is and returned.
pub async fn revoke(tx: &TenantTx, id: InvitationId) -> Result<Invitation, DomainError> {
    crate::repo::require(tx, strata_domain::Action::RevokeInvitation)?;
    let org = tx.ctx().org_id().as_uuid();
    let revoked = tx
        .execute_raw(statement(
            "UPDATE public.invitations SET revoked_at = $3 \
             WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
            vec![org.into(), id.as_uuid().into(), Utc::now().into()],
        ))
        .await
        .map_err(map_db_err)?
        .rows_affected();
    if revoked == 1 {
        audit::record(
            tx,
            AuditEntry {
                action: strata_domain::Action::RevokeInvitation,
                target_type: "Invitation",
                target_id: Some(id.as_uuid()),
                client_id: None,
                details: serde_json::json!({}),
            },
        )
        .await?;
    }
    one(tx, org, id.as_uuid()).await
}

/// One invitation of `org` (read back after a write: Citus computes no
/// array text in a reference table's `RETURNING`).
async fn one(tx: &TenantTx, org: Uuid, id: Uuid) -> Result<Invitation, DomainError> {
    let sql = format!("SELECT {COLUMNS} FROM public.invitations WHERE org_id = $1 AND id = $2");
    rows(tx, &sql, vec![org.into(), id.into()])
        .await?
        .pop()
        .ok_or(DomainError::NotFound)
}
