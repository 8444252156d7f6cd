//! Resolving a verified credential into what the database says about it:
//! the user (provisioned on first use) and their memberships, with client
//! assignments. Runs as the `app_auth` role, which sees only the presenting
//! user's own rows.
//!
//! Raw SQL, on purpose: this runs on every request, before any tenant
//! context exists, as one hand-tuned statement per step (an insert-or-read
//! CTE, an `array_agg ... FILTER` over a join) kept verbatim.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use strata_domain::model::{Membership, User};
use strata_domain::{ApiKeyId, ClientId, DomainError, OrgId, OrgType, Role, UserId};
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
               ON CONFLICT (id) DO UPDATE SET email = excluded.email, last_seen_at = excluded.last_seen_at
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
///
/// Two statements rather than one outer join: memberships are read before
/// any organization is known (on Citus a reference table, present on every
/// node), client assignments are an agency's rows (distributed by
/// organization), and Citus plans no outer join from the one to the other.
/// The second statement runs only for a user with an agency membership and
/// names those organizations, so it reaches only their shards.
pub async fn memberships(tx: &AuthTx, user: UserId) -> Result<Vec<Membership>, DomainError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT m.org_id, m.org_type, m.role, m.created_at
           FROM public.memberships m
           WHERE m.user_id = $1
           ORDER BY m.created_at, m.org_id"#,
        [user.as_uuid().into()],
    );
    let rows = tx.conn().query_all_raw(stmt).await.map_err(map_db_err)?;
    let mut out = rows
        .into_iter()
        .map(|row| {
            let org_type: String = row.try_get("", "org_type").map_err(map_db_err)?;
            let role: String = row.try_get("", "role").map_err(map_db_err)?;
            Ok(Membership {
                org_id: OrgId::from_uuid(row.try_get("", "org_id").map_err(map_db_err)?),
                org_type: OrgType::parse(&org_type).ok_or_else(|| {
                    DomainError::Internal(format!("unknown organization type {org_type}").into())
                })?,
                user_id: user,
                role: Role::parse(&role)
                    .ok_or_else(|| DomainError::Internal(format!("unknown role {role}").into()))?,
                client_ids: Vec::new(),
                created_at: row.try_get("", "created_at").map_err(map_db_err)?,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    let agencies: Vec<Uuid> = out
        .iter()
        .filter(|m| m.org_type == OrgType::Agency)
        .map(|m| m.org_id.as_uuid())
        .collect();
    if agencies.is_empty() {
        return Ok(out);
    }
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT org_id, client_id FROM tenant_b.client_assignments
           WHERE org_id = ANY($1) AND user_id = $2
           ORDER BY org_id, client_id"#,
        [agencies.into(), user.as_uuid().into()],
    );
    for row in tx.conn().query_all_raw(stmt).await.map_err(map_db_err)? {
        let org: Uuid = row.try_get("", "org_id").map_err(map_db_err)?;
        let client: Uuid = row.try_get("", "client_id").map_err(map_db_err)?;
        if let Some(m) = out.iter_mut().find(|m| m.org_id.as_uuid() == org) {
            m.client_ids.push(ClientId::from_uuid(client));
        }
    }
    Ok(out)
}

/// A presented API key, as `app_auth` sees it (only the row whose hash was
/// presented is visible).
#[derive(Clone, Debug)]
pub struct PresentedKey {
    /// The key.
    pub id: ApiKeyId,
    /// Its organization.
    pub org_id: OrgId,
    /// The organization's type.
    pub org_type: OrgType,
    /// The one client it is limited to, if any.
    pub client_id: Option<ClientId>,
    /// Whether it may only read.
    pub read_only: bool,
    /// Neither revoked nor expired, by the database's clock.
    pub active: bool,
    /// Not used within the last minute: worth recording this use.
    pub stale: bool,
}

/// The key whose hash `tx` was begun with, if one exists: its current
/// secret, or its previous one (after `rotateApiKey`), which stays active
/// until its grace ends. More than one match (a hash collision across
/// organizations) is treated as none.
pub async fn presented_key(
    tx: &AuthTx,
    key_hash: &str,
) -> Result<Option<PresentedKey>, DomainError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT org_id, id, org_type, client_id, read_only,
                  revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                    AND (key_hash = $1 OR previous_valid_until > now()) AS active,
                  last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale
           FROM public.api_keys
           WHERE key_hash = $1 OR previous_key_hash = $1
           LIMIT 2"#,
        [key_hash.to_owned().into()],
    );
    let mut rows = tx.conn().query_all_raw(stmt).await.map_err(map_db_err)?;
    if rows.len() != 1 {
        return Ok(None);
    }
    let Some(row) = rows.pop() else {
        return Ok(None);
    };
    let org_type: String = row.try_get("", "org_type").map_err(map_db_err)?;
    Ok(Some(PresentedKey {
        id: ApiKeyId::from_uuid(row.try_get("", "id").map_err(map_db_err)?),
        org_id: OrgId::from_uuid(row.try_get("", "org_id").map_err(map_db_err)?),
        org_type: OrgType::parse(&org_type).ok_or_else(|| {
            DomainError::Internal(format!("unknown organization type {org_type}").into())
        })?,
        client_id: row
            .try_get::<Option<Uuid>>("", "client_id")
            .map_err(map_db_err)?
            .map(ClientId::from_uuid),
        read_only: row.try_get("", "read_only").map_err(map_db_err)?,
        active: row.try_get("", "active").map_err(map_db_err)?,
        stale: row.try_get("", "stale").map_err(map_db_err)?,
    }))
}

/// Records that `key` was used now. The condition repeats the staleness
/// check so that concurrent requests write at most once a minute.
pub async fn touch_key(tx: &AuthTx, key: &PresentedKey, key_hash: &str) -> Result<(), DomainError> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"UPDATE public.api_keys SET last_used_at = now()
           WHERE org_id = $1 AND id = $2 AND (key_hash = $3 OR previous_key_hash = $3)
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"#,
        [
            key.org_id.as_uuid().into(),
            key.id.as_uuid().into(),
            key_hash.to_owned().into(),
        ],
    );
    tx.conn().execute_raw(stmt).await.map_err(map_db_err)?;
    Ok(())
}
