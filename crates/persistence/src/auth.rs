//! Resolving a verified credential into what the database says about it:
//! the user (provisioned on first use) and their memberships, with client
//! assignments. Runs as the `app_auth` role, which sees only the presenting
//! user's own rows.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use strata_domain::model::{Membership, User};
use strata_domain::{ClientId, DomainError, OrgId, OrgType, Role, UserId};
use uuid::Uuid;

use crate::error::map_db_err;
use crate::tx::AuthTx;

/// Returns the user, creating it on first sight. The e-mail is kept up to
/// date when a token carries one.
pub async fn provision_user(
    tx: &AuthTx,
    user: UserId,
    email: Option<&str>,
) -> Result<User, DomainError> {
    // Insert-or-return in one statement; the update only fires when the
    // e-mail changed, so a steady stream of requests writes nothing.
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"WITH ins AS (
               INSERT INTO public.users (id, email) VALUES ($1, $2)
               ON CONFLICT (id) DO UPDATE SET email = excluded.email, last_seen_at = now()
                   WHERE excluded.email IS NOT NULL AND users.email IS DISTINCT FROM excluded.email
               RETURNING id, email, created_at
           )
           SELECT id, email, created_at FROM ins
           UNION ALL
           SELECT id, email, created_at FROM public.users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ins)"#,
        [user.as_uuid().into(), email.map(str::to_owned).into()],
    );
    let row = tx
        .conn()
        .query_one_raw(stmt)
        .await
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)?;
    Ok(User {
        id: UserId::from_uuid(row.try_get("", "id").map_err(map_db_err)?),
        email: row.try_get("", "email").map_err(map_db_err)?,
        created_at: row.try_get("", "created_at").map_err(map_db_err)?,
    })
}

/// The user's memberships, each with its client assignments.
pub async fn memberships(tx: &AuthTx, user: UserId) -> Result<Vec<Membership>, DomainError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT m.org_id, m.org_type, m.role, m.created_at,
                  coalesce(array_agg(ca.client_id ORDER BY ca.client_id)
                           FILTER (WHERE ca.client_id IS NOT NULL), '{}') AS client_ids
           FROM public.memberships m
           LEFT JOIN tenant_b.client_assignments ca
                  ON ca.org_id = m.org_id AND ca.user_id = m.user_id
           WHERE m.user_id = $1
           GROUP BY m.org_id, m.org_type, m.role, m.created_at
           ORDER BY m.created_at, m.org_id"#,
        [user.as_uuid().into()],
    );
    let rows = tx.conn().query_all_raw(stmt).await.map_err(map_db_err)?;
    rows.into_iter()
        .map(|row| {
            let org_type: String = row.try_get("", "org_type").map_err(map_db_err)?;
            let role: String = row.try_get("", "role").map_err(map_db_err)?;
            let client_ids: Vec<Uuid> = row.try_get("", "client_ids").map_err(map_db_err)?;
            Ok(Membership {
                org_id: OrgId::from_uuid(row.try_get("", "org_id").map_err(map_db_err)?),
                org_type: OrgType::parse(&org_type).ok_or_else(|| {
                    DomainError::Internal(format!("unknown organization type {org_type}").into())
                })?,
                user_id: user,
                role: Role::parse(&role)
                    .ok_or_else(|| DomainError::Internal(format!("unknown role {role}").into()))?,
                client_ids: client_ids.into_iter().map(ClientId::from_uuid).collect(),
                created_at: row.try_get("", "created_at").map_err(map_db_err)?,
            })
        })
        .collect()
}
