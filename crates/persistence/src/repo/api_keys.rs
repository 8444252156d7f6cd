//! API keys of the context's organization, for both tenant types (one table
//! in `public`). Owners and admins create, list and revoke them; a key itself
//! never can. The secret exists only in the value `create` returns: the
//! database keeps its SHA-256 hash and a short visible prefix.
//!
//! Raw SQL, on purpose: one table in `public` for both tenant types (no
//! two-schema copy), and every statement, `RETURNING` included, names the
//! columns it reads, so that `key_hash` is never read back.

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use strata_domain::{ApiKeyId, ClientId, DomainError, OrgId, OrgType, UserId, ValidationError};
use uuid::Uuid;

use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::repo::{Page, PageRequest, clients};
use crate::tx::TenantTx;

/// What every secret starts with, so keys are recognisable (by people and
/// secret scanners) and told apart from JWTs.
pub const SECRET_PREFIX: &str = "strata_";

/// Random characters after the prefix: 43 base62 characters carry more than
/// 256 bits, as much as 32 random bytes.
const SECRET_RANDOM_CHARS: usize = 43;

/// How much of the secret is kept and shown to recognise a key by.
const VISIBLE_CHARS: usize = 12;

/// Longest accepted key name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// An API key, without its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The organization it acts in.
    pub org_id: OrgId,
    /// The first client it is limited to, if any (agencies).
    pub client_id: Option<ClientId>,
    /// Every client it is limited to (agencies); empty: all of them.
    pub client_ids: Vec<ClientId>,
    /// Requests a minute its own bucket allows, instead of the server's
    /// per-key rate (the organization's still applies).
    pub rate_limit_per_minute: Option<u32>,
    /// A name to recognise it by.
    pub name: String,
    /// The first characters of the secret.
    pub prefix: String,
    /// Whether it may only read.
    pub read_only: bool,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// The user who created it.
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    /// Whether the key authenticates at `now`: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The columns read back; never `key_hash`.
const COLUMNS: &str = "org_id, id, client_id, client_ids, rate_limit_per_minute, name, prefix, \
                       read_only, expires_at, revoked_at, last_used_at, created_by, created_at";

#[derive(Debug, FromQueryResult)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    client_id: Option<Uuid>,
    client_ids: Vec<Uuid>,
    rate_limit_per_minute: Option<i32>,
    name: String,
    prefix: String,
    read_only: bool,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl From<Row> for ApiKey {
    fn from(r: Row) -> Self {
        ApiKey {
            id: ApiKeyId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            client_id: r.client_id.map(ClientId::from_uuid),
            client_ids: r.client_ids.into_iter().map(ClientId::from_uuid).collect(),
            rate_limit_per_minute: r.rate_limit_per_minute.and_then(|n| u32::try_from(n).ok()),
            name: r.name,
            prefix: r.prefix,
            read_only: r.read_only,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_by: r.created_by.map(UserId::from_uuid),
            created_at: r.created_at,
        }
    }
}

/// A new key, validated.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    name: String,
    client_ids: Vec<ClientId>,
    read_only: bool,
    expires_at: Option<DateTime<Utc>>,
    rate_limit_per_minute: Option<u32>,
}

/// The highest rate a key may be given, in requests a minute.
pub const MAX_RATE_PER_MINUTE: u32 = 1_000_000;

impl NewApiKey {
    /// Parses the input of a new key: a trimmed, non-empty name of at most
    /// 200 characters without control characters, the clients it is
    /// limited to (duplicates dropped, order kept), an expiry after `now`
    /// and a rate of 1 to [`MAX_RATE_PER_MINUTE`] requests a minute.
    pub fn parse(
        name: &str,
        client_ids: &[ClientId],
        read_only: bool,
        expires_at: Option<DateTime<Utc>>,
        rate_limit_per_minute: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ValidationError::new(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters long"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ValidationError::new("expiresAt", "must be in the future"));
        }
        let rate_limit_per_minute = match rate_limit_per_minute {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_RATE_PER_MINUTE).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "rateLimitPerMinute",
                            format!("must be between 1 and {MAX_RATE_PER_MINUTE}"),
                        )
                    })?,
            ),
        };
        let mut unique: Vec<ClientId> = Vec::with_capacity(client_ids.len());
        for c in client_ids {
            if !unique.contains(c) {
                unique.push(*c);
            }
        }
        Ok(Self {
            name: name.to_owned(),
            client_ids: unique,
            read_only,
            expires_at,
            rate_limit_per_minute,
        })
    }
}

/// A key just created, with the only copy of its secret.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKey,
    secret: SecretString,
}

impl CreatedApiKey {
    /// The secret (`strata_...`), to hand to the caller once and nowhere
    /// else: never log or store it.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

/// The stored form of a secret: its SHA-256, in lowercase hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `token` has the shape of a secret this module issues, so that
/// garbage is refused without a database round trip.
pub fn is_well_formed(token: &str) -> bool {
    token.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn generate_secret() -> String {
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + SECRET_RANDOM_CHARS);
    secret.push_str(SECRET_PREFIX);
    // ThreadRng is a CSPRNG seeded from the operating system.
    Alphanumeric.append_string(&mut rand::rng(), &mut secret, SECRET_RANDOM_CHARS);
    secret
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Creates a key in the context's organization (owners and admins) and its
/// audit row; returns it with its secret.
pub async fn create(tx: &TenantTx, new: NewApiKey) -> Result<CreatedApiKey, DomainError> {
    crate::repo::require(tx, strata_domain::Action::CreateApiKey)?;
    let ctx = tx.ctx();
    match ctx.org_type() {
        _ if new.client_ids.is_empty() => {}
        OrgType::Sme => {
            return Err(ValidationError::new(
                "clientIds",
                "organizations without clients cannot limit a key to clients",
            )
            .into());
        }
        OrgType::Agency => {
            // Another tenant's client is "not found", like a missing one.
            if clients::by_ids(tx, &new.client_ids).await?.len() != new.client_ids.len() {
                return Err(DomainError::NotFound);
            }
        }
    }
    let client_id = new.client_ids.first().copied();
    let id = ApiKeyId::generate();
    let secret = generate_secret();
    let prefix: String = secret.chars().take(VISIBLE_CHARS).collect();
    let sql = format!(
        "INSERT INTO public.api_keys \
             (org_id, org_type, id, client_id, name, prefix, key_hash, read_only, expires_at, \
              created_by, created_at, client_ids, rate_limit_per_minute) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::uuid[], $13) \
         RETURNING {COLUMNS}"
    );
    let row = Row::find_by_statement(statement(
        &sql,
        vec![
            ctx.org_id().as_uuid().into(),
            ctx.org_type().as_str().into(),
            id.as_uuid().into(),
            client_id.map(|c| c.as_uuid()).into(),
            new.name.clone().into(),
            prefix.clone().into(),
            hash_secret(&secret).into(),
            new.read_only.into(),
            new.expires_at.into(),
            ctx.actor().user_id().map(|u| u.as_uuid()).into(),
            Utc::now().into(),
            crate::array::uuid_array(new.client_ids.iter().map(|c| c.as_uuid())).into(),
            new.rate_limit_per_minute
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
                .into(),
        ],
    ))
    .one(tx)
    .await
    .map_err(map_db_err)?
    .ok_or(DomainError::NotFound)?;
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::CreateApiKey,
            target_type: "ApiKey",
            target_id: Some(id.as_uuid()),
            client_id,
            details: serde_json::json!({
                "name": new.name,
                "prefix": prefix,
                "readOnly": new.read_only,
                "expiresAt": new.expires_at,
                "clientIds": new.client_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rateLimitPerMinute": new.rate_limit_per_minute,
            }),
        },
    )
    .await?;
    Ok(CreatedApiKey {
        key: row.into(),
        secret: SecretString::from(secret),
    })
}

/// A page of the organization's keys, newest first (owners and admins).
pub async fn list(tx: &TenantTx, page: &PageRequest) -> Result<Page<ApiKey>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ListApiKeys)?;
    let limit = i64::try_from(page.limit).unwrap_or(i64::MAX - 1);
    let mut values: Vec<Value> = vec![tx.ctx().org_id().as_uuid().into(), (limit + 1).into()];
    // Newest first: rows after a key are older, rows before it newer.
    let bounds = crate::repo::newest_first_bounds(page, &mut values);
    let order = if page.fetch_desc() { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS} FROM public.api_keys WHERE org_id = $1{bounds} \
         ORDER BY created_at {order}, id {order} LIMIT $2"
    );
    let rows = Row::find_by_statement(statement(&sql, values))
        .all(tx)
        .await
        .map_err(map_db_err)?;
    Ok(page.page(rows).map(ApiKey::from))
}

/// The organization's keys among `ids` (owners and admins), in one
/// statement.
pub async fn by_ids(tx: &TenantTx, ids: &[ApiKeyId]) -> Result<Vec<ApiKey>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ListApiKeys)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT {COLUMNS} FROM public.api_keys WHERE org_id = $1 AND id = ANY($2::uuid[])");
    let ids = crate::repo::uuid_array(ids.iter().map(|k| k.as_uuid()));
    let rows = Row::find_by_statement(statement(
        &sql,
        vec![tx.ctx().org_id().as_uuid().into(), ids.into()],
    ))
    .all(tx)
    .await
    .map_err(map_db_err)?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// How many keys the organization has (owners and admins).
pub async fn count(tx: &TenantTx) -> Result<u64, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ListApiKeys)?;
    let row = tx
        .query_one_raw(statement(
            "SELECT count(*) AS n FROM public.api_keys WHERE org_id = $1",
            vec![tx.ctx().org_id().as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n").map_err(map_db_err)?,
        None => 0,
    };
    Ok(n.max(0) as u64)
}

/// Revokes a key of the organization (owners and admins) and writes its
/// audit row. Revoking a revoked key keeps the first revocation time. A key
/// of another organization is "not found" and stays untouched.
pub async fn revoke(tx: &TenantTx, id: ApiKeyId) -> Result<ApiKey, DomainError> {
    crate::repo::require(tx, strata_domain::Action::RevokeApiKey)?;
    // The time is a parameter, not `now()`: Citus refuses a function
    // that is not immutable inside `coalesce` in a write to a reference
    // table.
    let sql = format!(
        "UPDATE public.api_keys SET revoked_at = coalesce(revoked_at, $3) \
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let key: ApiKey = Row::find_by_statement(statement(
        &sql,
        vec![
            tx.ctx().org_id().as_uuid().into(),
            id.as_uuid().into(),
            Utc::now().into(),
        ],
    ))
    .one(tx)
    .await
    .map_err(map_db_err)?
    .ok_or(DomainError::NotFound)?
    .into();
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::RevokeApiKey,
            target_type: "ApiKey",
            target_id: Some(id.as_uuid()),
            client_id: key.client_id,
            details: serde_json::json!({ "name": key.name, "prefix": key.prefix }),
        },
    )
    .await?;
    Ok(key)
}

/// Gives a key of the context's organization a new secret (owners and
/// admins) and writes its audit row; the previous secret stays valid for
/// `grace` (none: it stops at once), the one before it no longer. A
/// revoked or expired key is not found.
pub async fn rotate(
    tx: &TenantTx,
    id: ApiKeyId,
    grace: std::time::Duration,
) -> Result<CreatedApiKey, DomainError> {
    crate::repo::require(tx, strata_domain::Action::RotateApiKey)?;
    let secret = generate_secret();
    let prefix: String = secret.chars().take(VISIBLE_CHARS).collect();
    let grace_seconds = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE public.api_keys SET previous_key_hash = key_hash, \
             previous_valid_until = now() + make_interval(secs => $3), \
             key_hash = $4, prefix = $5 \
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now()) \
         RETURNING {COLUMNS}"
    );
    let key: ApiKey = Row::find_by_statement(statement(
        &sql,
        vec![
            tx.ctx().org_id().as_uuid().into(),
            id.as_uuid().into(),
            (grace_seconds as f64).into(),
            hash_secret(&secret).into(),
            prefix.clone().into(),
        ],
    ))
    .one(tx)
    .await
    .map_err(map_db_err)?
    .ok_or(DomainError::NotFound)?
    .into();
    audit::record(
        tx,
        AuditEntry {
            action: strata_domain::Action::RotateApiKey,
            target_type: "ApiKey",
            target_id: Some(id.as_uuid()),
            client_id: key.client_id,
            details: serde_json::json!({
                "name": key.name,
                "prefix": prefix,
                "graceSeconds": grace_seconds,
            }),
        },
    )
    .await?;
    Ok(CreatedApiKey {
        key,
        secret: SecretString::from(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_well_formed_distinct_and_hashed_to_hex() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(is_well_formed(&a) && is_well_formed(&b));
        assert_ne!(a, b);
        let h = hash_secret(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a[SECRET_PREFIX.len()..]));
        assert!(!is_well_formed("strata_xxx"));
        assert!(!is_well_formed("eyJhbGciOi"));
    }

    #[test]
    fn names_and_expiry_are_checked() {
        let now = Utc::now();
        assert_eq!(
            NewApiKey::parse(" ", &[], false, None, None, now)
                .err()
                .map(|e| e.field),
            Some("name")
        );
        assert_eq!(
            NewApiKey::parse("ci", &[], false, Some(now), None, now)
                .err()
                .map(|e| e.field),
            Some("expiresAt")
        );
        assert!(NewApiKey::parse("ci", &[], true, None, None, now).is_ok());
    }

    #[test]
    fn rates_are_bounded_and_clients_kept_once_in_order() {
        let now = Utc::now();
        for bad in [0, -1, i64::from(MAX_RATE_PER_MINUTE) + 1] {
            assert_eq!(
                NewApiKey::parse("ci", &[], false, None, Some(bad), now)
                    .err()
                    .map(|e| e.field),
                Some("rateLimitPerMinute"),
                "{bad}"
            );
        }
        let (a, b) = (ClientId::generate(), ClientId::generate());
        let new = NewApiKey::parse("ci", &[b, a, b], false, None, Some(60), now).unwrap();
        assert_eq!(new.client_ids, vec![b, a]);
        assert_eq!(new.rate_limit_per_minute, Some(60));
    }
}
