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
               RETURNING id, email, created_at, sessions_valid_after
           )
           SELECT id, email, created_at, sessions_valid_after FROM ins
           UNION ALL
           SELECT id, email, created_at, sessions_valid_after FROM public.users
           WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ins)"#,
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
        sessions_valid_after: row
            .try_get("", "sessions_valid_after")
            .map_err(map_db_err)?,
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
        r#"SELECT m.org_id, m.org_type, m.role, m.created_at, m.email, m.name,
                  m.sessions_valid_after
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
                email: row.try_get("", "email").map_err(map_db_err)?,
                name: row.try_get("", "name").map_err(map_db_err)?,
                sessions_valid_after: row
                    .try_get("", "sessions_valid_after")
                    .map_err(map_db_err)?,
                organization: None,
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
    /// The clients it is limited to (empty: all of them).
    pub client_ids: Vec<ClientId>,
    /// Requests a minute its own bucket allows, when set.
    pub rate_limit_per_minute: Option<u32>,
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
        r#"SELECT org_id, id, org_type, client_ids, rate_limit_per_minute, read_only,
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
        client_ids: row
            .try_get::<Vec<Uuid>>("", "client_ids")
            .map_err(map_db_err)?
            .into_iter()
            .map(ClientId::from_uuid)
            .collect(),
        rate_limit_per_minute: row
            .try_get::<Option<i32>>("", "rate_limit_per_minute")
            .map_err(map_db_err)?
            .and_then(|n| u32::try_from(n).ok()),
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

/// What a verified token says about its user besides their id.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity<'a> {
    /// E-mail, if the token carried one.
    pub email: Option<&'a str>,
    /// Whether the identity provider verified that e-mail.
    pub email_verified: bool,
    /// Display name, if the token carried one.
    pub name: Option<&'a str>,
}

impl Identity<'_> {
    /// The e-mail invitations are matched against: lower case, and only
    /// when the provider verified it.
    pub(crate) fn verified_email(&self) -> Option<String> {
        let email = self.email.filter(|_| self.email_verified)?;
        let lower = email.trim().to_lowercase();
        crate::repo::invitations::is_address(&lower).then_some(lower)
    }
}

/// Accepts every pending invitation addressed to the verified e-mail of
/// `identity`: the user becomes a member of each organization with the
/// invited role and clients, and each acceptance writes its audit row.
/// Returns the organizations joined. With no verified e-mail, does
/// nothing. `only` limits it to one invitation (`acceptInvitation`).
pub async fn accept_invitations(
    tx: &AuthTx,
    user: UserId,
    identity: &Identity<'_>,
    only: Option<strata_domain::InvitationId>,
    request_id: &str,
) -> Result<Vec<OrgId>, DomainError> {
    let Some(email) = identity.verified_email() else {
        return Ok(Vec::new());
    };
    tx.set("app.user_email", &email).await?;
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT org_id, id, org_type, role, array_to_string(client_ids, ',') AS client_ids
           FROM public.invitations
           WHERE email = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3
             AND ($2::uuid IS NULL OR id = $2)
           ORDER BY created_at, org_id
           FOR UPDATE"#,
        [
            email.clone().into(),
            only.map(|i| i.as_uuid()).into(),
            chrono::Utc::now().into(),
        ],
    );
    let rows = tx.conn().query_all_raw(stmt).await.map_err(map_db_err)?;
    let mut joined = Vec::new();
    for row in rows {
        let org: Uuid = row.try_get("", "org_id").map_err(map_db_err)?;
        let id: Uuid = row.try_get("", "id").map_err(map_db_err)?;
        let org_type: String = row.try_get("", "org_type").map_err(map_db_err)?;
        let role: String = row.try_get("", "role").map_err(map_db_err)?;
        let clients: String = row.try_get("", "client_ids").map_err(map_db_err)?;
        let inserted = tx
            .conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                r#"INSERT INTO public.memberships
                       (org_id, user_id, org_type, role, email, name, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                   ON CONFLICT (org_id, user_id) DO NOTHING"#,
                [
                    org.into(),
                    user.as_uuid().into(),
                    org_type.clone().into(),
                    role.clone().into(),
                    identity.email.map(str::to_owned).into(),
                    identity.name.map(str::to_owned).into(),
                    chrono::Utc::now().into(),
                ],
            ))
            .await
            .map_err(map_db_err)?
            .rows_affected();
        if inserted == 1 {
            // One row at a time: a router insert each, on Citus too.
            for client in clients.split(',').filter(|c| !c.is_empty()) {
                let client: Uuid = client
                    .parse()
                    .map_err(|e| DomainError::Internal(Box::new(e)))?;
                tx.conn()
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        r#"INSERT INTO tenant_b.client_assignments
                               (org_id, client_id, user_id, org_type, created_at)
                           VALUES ($1, $2, $3, 'AGENCY', $4)"#,
                        [
                            org.into(),
                            client.into(),
                            user.as_uuid().into(),
                            chrono::Utc::now().into(),
                        ],
                    ))
                    .await
                    .map_err(map_db_err)?;
            }
        }
        tx.conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                r#"UPDATE public.invitations SET accepted_at = $4, accepted_by = $3
                   WHERE org_id = $1 AND id = $2"#,
                [
                    org.into(),
                    id.into(),
                    user.as_uuid().into(),
                    chrono::Utc::now().into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        let details = serde_json::json!({
            "role": role,
            "alreadyMember": inserted == 0,
        });
        own_audit(
            tx,
            org,
            user,
            strata_domain::Action::AcceptInvitation,
            "Invitation",
            id,
            details,
            request_id,
        )
        .await?;
        if inserted == 1 {
            joined.push(OrgId::from_uuid(org));
        }
    }
    Ok(joined)
}

/// The organization of `invitation` when `user` accepted it, as far as the
/// verified e-mail set by [`accept_invitations`] lets `app_auth` see it.
pub(crate) async fn accepted_by(
    tx: &AuthTx,
    invitation: strata_domain::InvitationId,
    user: UserId,
) -> Result<Option<OrgId>, DomainError> {
    let row = tx
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT org_id FROM public.invitations WHERE id = $1 AND accepted_by = $2",
            [invitation.as_uuid().into(), user.as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?;
    row.map(|r| r.try_get::<Uuid>("", "org_id").map(OrgId::from_uuid))
        .transpose()
        .map_err(map_db_err)
}

/// Writes an audit row of the user's own doing in `org` (accepting an
/// invitation, leaving), as `app_auth` may.
#[allow(clippy::too_many_arguments)]
async fn own_audit(
    tx: &AuthTx,
    org: Uuid,
    user: UserId,
    action: strata_domain::Action,
    target_type: &str,
    target: Uuid,
    details: serde_json::Value,
    request_id: &str,
) -> Result<(), DomainError> {
    tx.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"INSERT INTO public.audit_log
                   (org_id, id, actor_user_id, operation, target_type, target_id, request_id, details)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
            [
                org.into(),
                Uuid::now_v7().into(),
                user.as_uuid().into(),
                action.audit_name().unwrap_or("unknown").to_owned().into(),
                target_type.to_owned().into(),
                target.into(),
                request_id.to_owned().into(),
                details.into(),
            ],
        ))
        .await
        .map_err(map_db_err)?;
    Ok(())
}

/// Fills in each membership's organization (name, slug, MFA policy), read
/// through the organizations the memberships name; keeps the member's
/// e-mail and name on their memberships current with the token's.
pub async fn complete_memberships(
    tx: &AuthTx,
    user: UserId,
    identity: &Identity<'_>,
    memberships: &mut [Membership],
) -> Result<(), DomainError> {
    if memberships.is_empty() {
        return Ok(());
    }
    let orgs = crate::array::uuid_array(memberships.iter().map(|m| m.org_id.as_uuid()));
    tx.set("app.member_org_ids", &orgs).await?;
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT id, name, slug, require_mfa FROM public.organizations WHERE id = ANY($1::uuid[])"#,
        [orgs.into()],
    );
    for row in tx.conn().query_all_raw(stmt).await.map_err(map_db_err)? {
        let id: Uuid = row.try_get("", "id").map_err(map_db_err)?;
        let summary = strata_domain::model::OrganizationSummary {
            name: row.try_get("", "name").map_err(map_db_err)?,
            slug: row.try_get("", "slug").map_err(map_db_err)?,
            require_mfa: row.try_get("", "require_mfa").map_err(map_db_err)?,
        };
        if let Some(m) = memberships.iter_mut().find(|m| m.org_id.as_uuid() == id) {
            m.organization = Some(summary);
        }
    }
    // Only an address the identity provider verified is shown to the
    // other members.
    let email = identity.email.filter(|_| identity.email_verified);
    let stale = |m: &Membership| {
        (email.is_some() && m.email.as_deref() != email)
            || (identity.name.is_some() && m.name.as_deref() != identity.name)
    };
    if memberships.iter().any(stale) {
        tx.conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                r#"UPDATE public.memberships
                   SET email = coalesce($2, email), name = coalesce($3, name)
                   WHERE user_id = $1
                     AND (email IS DISTINCT FROM coalesce($2, email)
                          OR name IS DISTINCT FROM coalesce($3, name))"#,
                [
                    user.as_uuid().into(),
                    email.map(str::to_owned).into(),
                    identity.name.map(str::to_owned).into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        for m in memberships.iter_mut() {
            if let Some(e) = email {
                m.email = Some(e.to_owned());
            }
            if let Some(n) = identity.name {
                m.name = Some(n.to_owned());
            }
        }
    }
    Ok(())
}

/// Ends the user's own membership of `org` as `app_auth` may (any role but
/// owner: an owner leaves through the organization's own transaction, which
/// can count its owners), and writes the audit row. `NOT_FOUND` when they
/// are no member (or an owner).
pub async fn leave(
    tx: &AuthTx,
    user: UserId,
    org: OrgId,
    request_id: &str,
) -> Result<(), DomainError> {
    leave_as(
        tx,
        user,
        org,
        strata_domain::Action::LeaveOrganization,
        request_id,
    )
    .await
}

/// [`leave`], audited as `action` (leaving, or deleting one's account).
pub(crate) async fn leave_as(
    tx: &AuthTx,
    user: UserId,
    org: OrgId,
    action: strata_domain::Action,
    request_id: &str,
) -> Result<(), DomainError> {
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"DELETE FROM public.memberships WHERE org_id = $1 AND user_id = $2 AND role <> 'OWNER'
               RETURNING role"#,
            [org.as_uuid().into(), user.as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?;
    let Some(row) = rows.first() else {
        return Err(DomainError::NotFound);
    };
    let role: String = row.try_get("", "role").map_err(map_db_err)?;
    own_audit(
        tx,
        org.as_uuid(),
        user,
        action,
        "Membership",
        user.as_uuid(),
        serde_json::json!({ "role": role }),
        request_id,
    )
    .await
}

/// Removes the user's personal data from their own row (the e-mail; the
/// name lives on memberships, which are gone by now) and refuses every
/// token issued until now.
pub(crate) async fn forget_user(tx: &AuthTx, user: UserId) -> Result<(), DomainError> {
    tx.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE public.users SET email = NULL, sessions_valid_after = $2 WHERE id = $1",
            [user.as_uuid().into(), chrono::Utc::now().into()],
        ))
        .await
        .map_err(map_db_err)?;
    Ok(())
}

/// Sets the user's own `sessions_valid_after` to now, with an audit row in
/// `org` when given.
pub async fn revoke_own_sessions(
    tx: &AuthTx,
    user: UserId,
    org: Option<OrgId>,
    request_id: &str,
) -> Result<(), DomainError> {
    tx.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE public.users SET sessions_valid_after = $2 WHERE id = $1",
            [user.as_uuid().into(), chrono::Utc::now().into()],
        ))
        .await
        .map_err(map_db_err)?;
    if let Some(org) = org {
        own_audit(
            tx,
            org.as_uuid(),
            user,
            strata_domain::Action::RevokeSessions,
            "User",
            user.as_uuid(),
            serde_json::json!({ "scope": "everywhere" }),
            request_id,
        )
        .await?;
    }
    Ok(())
}
