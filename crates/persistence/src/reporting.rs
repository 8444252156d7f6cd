//! Reporting logins: PostgreSQL logins with which SQL and BI tools read one
//! organization's rows (or one agency client's) through the `reporting`
//! views, under the same Row-Level Security as the gateway's requests.
//!
//! A login's tenant context is its row in `app.reporting_logins`, found by
//! `session_user`, which nothing the session does can change; the login is a
//! member of `app_reporting` (organization-wide) or `app_reporting_client`
//! (one client) and of nothing else. Names are derived from the database,
//! the organization and the client, so the same command finds the same
//! login again, and reveal none of them (every login can read `pg_roles`).
//! Passwords are random, shown once, and reach the server only as a
//! SCRAM-SHA-256 verifier computed here, so no statement log ever holds one.
//! Everything runs in one transaction on the pool's login role, which must
//! be allowed to create roles and be a member of `strata_owner` (the role
//! that runs the migrations): roles are created as the login role, the
//! mapping row and the audit row are written as `strata_owner`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use strata_domain::{ClientId, OrgId};
use uuid::Uuid;

use crate::Db;

/// What a reporting login reads: an organization, or one client of an
/// agency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The organization.
    pub org_id: OrgId,
    /// The one client the login is limited to, if any.
    pub client_id: Option<ClientId>,
}

/// A login with a new password.
#[derive(Debug)]
pub struct Issued {
    /// The login's name.
    pub login: String,
    /// Its password, shown to the operator once and stored nowhere.
    pub password: SecretString,
    /// True when the login was created, false when its password was
    /// rotated.
    pub created: bool,
    /// Sessions of the login ended after a rotation; `None` when the
    /// database's login role may not end them.
    pub sessions_ended: Option<u64>,
}

/// A login removed.
#[derive(Debug)]
pub struct Revoked {
    /// The login's name.
    pub login: String,
    /// Sessions of the login ended; `None` when the database's login role
    /// may not end them.
    pub sessions_ended: Option<u64>,
    /// False when the organization no longer exists, so no audit log could
    /// record the removal.
    pub audited: bool,
}

/// Why a reporting login could not be created, rotated or revoked.
#[derive(Debug, thiserror::Error)]
pub enum ReportingError {
    /// No organization with this id.
    #[error("there is no organization {0}")]
    NoSuchOrganization(OrgId),
    /// The client is not one of the organization's.
    #[error("{client} is not a client of organization {org}")]
    NoSuchClient {
        /// The organization.
        org: OrgId,
        /// The client asked for.
        client: ClientId,
    },
    /// The login exists and no new password was asked for.
    #[error(
        "the reporting login {0} already exists: use --rotate for a new password or --revoke to remove it"
    )]
    Exists(String),
    /// Nothing to revoke.
    #[error("there is no reporting login for this organization (or client)")]
    NotFound,
    /// A role of that name exists that is not a plain reporting login.
    #[error(
        "a role named {0} exists with privileges a reporting login never has; it was left as it is"
    )]
    Foreign(String),
    /// The database URL cannot carry the login.
    #[error("the database URL cannot be turned into the login's connection string")]
    BadUrl,
    /// The database refused.
    #[error("the database refused: {0}")]
    Database(#[from] DbErr),
}

/// The role every organization-wide reporting login is a member of.
pub const REPORTING_ROLE: &str = "app_reporting";
/// The role every client-limited reporting login is a member of.
pub const REPORTING_CLIENT_ROLE: &str = "app_reporting_client";
/// The connections one reporting login may hold at once.
pub const CONNECTION_LIMIT: u32 = 10;
/// How long one statement of a reporting login may run, by default.
pub const STATEMENT_TIMEOUT: &str = "60s";

const PREFIX: &str = "strata_report_";
const PASSWORD_CHARS: usize = 32;
const SCRAM_ITERATIONS: u32 = 4096;

/// The login's name for `scope` in the database named `database`:
/// `strata_report_` and 32 hexadecimal digits of a digest of the three, so
/// that the names of two databases of one cluster never meet and a name
/// tells nobody which organization it reads.
pub fn login_name(database: &str, scope: Scope) -> String {
    let mut digest = Sha256::new();
    digest.update(b"strata reporting login\n");
    digest.update(database.as_bytes());
    digest.update(b"\n");
    digest.update(scope.org_id.as_uuid().as_bytes());
    if let Some(client) = scope.client_id {
        digest.update(b"\n");
        digest.update(client.as_uuid().as_bytes());
    }
    let hex = hex::encode(digest.finalize());
    format!("{PREFIX}{}", &hex[..32])
}

/// The connection string of `login` with `password`: `base` (the URL the
/// command connected with) with its user and password replaced.
pub fn connection_url(
    base: &SecretString,
    login: &str,
    password: &SecretString,
) -> Result<SecretString, ReportingError> {
    let mut url = url::Url::parse(base.expose_secret()).map_err(|_| ReportingError::BadUrl)?;
    url.set_username(login)
        .and_then(|()| url.set_password(Some(password.expose_secret())))
        .map_err(|()| ReportingError::BadUrl)?;
    Ok(SecretString::from(url.to_string()))
}

/// Creates the login of `scope` with a new password, or with `rotate`
/// gives an existing one a new password (creating it when missing), and
/// writes the audit row. A rotation ends the login's open sessions.
pub async fn issue(db: &Db, scope: Scope, rotate: bool) -> Result<Issued, ReportingError> {
    let txn = db.raw().begin().await?;
    let (login, state) = inspect(&txn, scope).await?;
    if state.role == Some(false) {
        return Err(ReportingError::Foreign(login));
    }
    let exists = state.mapped && state.role.is_some();
    if exists && !rotate {
        return Err(ReportingError::Exists(login));
    }
    if db.is_citus() && !state.mapped {
        // No foreign keys from the mapping on Citus (see
        // `copy_to_workers`): the migrating superuser looks instead.
        check_scope_exists(&txn, scope).await?;
    }
    let password = SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_CHARS));
    let verifier = scram_verifier(password.expose_secret(), &rand::random::<[u8; 16]>())?;
    let (group, other) = match scope.client_id {
        Some(_) => (REPORTING_CLIENT_ROLE, REPORTING_ROLE),
        None => (REPORTING_ROLE, REPORTING_CLIENT_ROLE),
    };
    let ddl = if exists {
        format!("ALTER ROLE {login} LOGIN PASSWORD '{verifier}'")
    } else if state.role.is_some() {
        // A plain reporting login left by an earlier schema of this
        // database (the mapping goes with `migrate down`, roles stay).
        format!(
            "ALTER ROLE {login} LOGIN CONNECTION LIMIT {CONNECTION_LIMIT} PASSWORD '{verifier}'; \
             GRANT {group} TO {login}; REVOKE {other} FROM {login}"
        )
    } else {
        format!(
            "CREATE ROLE {login} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
             INHERIT CONNECTION LIMIT {CONNECTION_LIMIT} PASSWORD '{verifier}' IN ROLE {group}"
        )
    };
    txn.execute_unprepared(&ddl).await?;
    if !exists {
        txn.execute_unprepared(&format!(
            "ALTER ROLE {login} SET search_path = reporting; \
             ALTER ROLE {login} SET default_transaction_read_only = on; \
             ALTER ROLE {login} SET statement_timeout = '{STATEMENT_TIMEOUT}'"
        ))
        .await?;
    }
    txn.execute_unprepared("SET LOCAL ROLE strata_owner")
        .await?;
    if state.mapped {
        execute(
            &txn,
            "UPDATE app.reporting_logins SET password_set_at = now() WHERE login = $1",
            vec![login.clone().into()],
        )
        .await?;
    } else {
        execute(
            &txn,
            "INSERT INTO app.reporting_logins (login, org_id, client_id) VALUES ($1, $2, $3)",
            vec![
                login.clone().into(),
                scope.org_id.as_uuid().into(),
                scope.client_id.map(|c| c.as_uuid()).into(),
            ],
        )
        .await
        .map_err(|e| match foreign_key(&e).as_deref() {
            Some("reporting_logins_org_id_fkey") => {
                ReportingError::NoSuchOrganization(scope.org_id)
            }
            Some("reporting_logins_org_id_client_id_fkey") => match scope.client_id {
                Some(client) => ReportingError::NoSuchClient {
                    org: scope.org_id,
                    client,
                },
                None => ReportingError::Database(e),
            },
            _ => ReportingError::Database(e),
        })?;
    }
    let operation = if exists {
        "rotateReportingLogin"
    } else {
        "createReportingLogin"
    };
    audit(&txn, scope, operation, &login).await?;
    txn.commit().await?;
    copy_to_workers(db).await?;
    let sessions_ended = if exists {
        end_sessions(db, state.oid).await
    } else {
        Some(0)
    };
    Ok(Issued {
        login,
        password,
        created: !exists,
        sessions_ended,
    })
}

/// Removes the login of `scope` and its mapping, writes the audit row
/// (unless the organization is gone), and ends the login's open sessions.
pub async fn revoke(db: &Db, scope: Scope) -> Result<Revoked, ReportingError> {
    let txn = db.raw().begin().await?;
    let (login, state) = inspect(&txn, scope).await?;
    match state.role {
        Some(false) => return Err(ReportingError::Foreign(login)),
        None if !state.mapped => return Err(ReportingError::NotFound),
        Some(true) => {
            txn.execute_unprepared(&format!("DROP ROLE {login}"))
                .await?;
        }
        None => {}
    }
    txn.execute_unprepared("SET LOCAL ROLE strata_owner")
        .await?;
    if state.mapped {
        execute(
            &txn,
            "DELETE FROM app.reporting_logins WHERE login = $1",
            vec![login.clone().into()],
        )
        .await?;
    }
    // The organization may be gone (its mapping went with it): then there
    // is no audit log to write to, and the login is still removed.
    let savepoint = txn.begin().await?;
    let audited = match audit(&savepoint, scope, "revokeReportingLogin", &login).await {
        Ok(()) => {
            savepoint.commit().await?;
            true
        }
        Err(ReportingError::Database(e)) if foreign_key(&e).is_some() => {
            savepoint.rollback().await?;
            false
        }
        Err(e) => return Err(e),
    };
    txn.commit().await?;
    copy_to_workers(db).await?;
    let sessions_ended = end_sessions(db, state.oid).await;
    Ok(Revoked {
        login,
        sessions_ended,
        audited,
    })
}

/// What exists of a login: its role in the cluster and its mapping in this
/// database.
struct State {
    /// The role exists; `Some(true)` when it is a plain reporting login
    /// (holds no attribute beyond logging in and is a member of a reporting
    /// role only), `Some(false)` when it is anything more. Members of the
    /// login itself (PostgreSQL 16 makes its creator one) gain nothing:
    /// their `session_user` maps to no organization.
    role: Option<bool>,
    /// The role's oid, for ending its sessions.
    oid: Option<i64>,
    /// This database maps the login to `scope`.
    mapped: bool,
}

/// Names the login of `scope`, takes a lock on it for the transaction, and
/// reads what exists of it.
async fn inspect(
    txn: &DatabaseTransaction,
    scope: Scope,
) -> Result<(String, State), ReportingError> {
    let database: String = one(txn, "SELECT current_database()::text", vec![]).await?;
    let login = login_name(&database, scope);
    execute(
        txn,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        vec![login.clone().into()],
    )
    .await?;
    let role = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT r.oid::bigint AS oid,
                    NOT (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls)
                    AND NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                    WHERE m.member = r.oid AND g.rolname NOT IN ($2, $3)) AS plain
             FROM pg_roles r WHERE r.rolname = $1",
            vec![
                login.clone().into(),
                REPORTING_ROLE.into(),
                REPORTING_CLIENT_ROLE.into(),
            ],
        ))
        .await?;
    let (oid, role) = match role {
        Some(row) => (
            Some(row.try_get::<i64>("", "oid")?),
            Some(row.try_get::<bool>("", "plain")?),
        ),
        None => (None, None),
    };
    txn.execute_unprepared("SET LOCAL ROLE strata_owner")
        .await?;
    let mapping = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT org_id, client_id FROM app.reporting_logins WHERE login = $1",
            vec![login.clone().into()],
        ))
        .await?;
    txn.execute_unprepared("SET LOCAL ROLE NONE").await?;
    let mapped = match mapping {
        None => false,
        Some(row) => {
            let org: Uuid = row.try_get("", "org_id")?;
            let client: Option<Uuid> = row.try_get("", "client_id")?;
            // Another scope under the same name would take a collision of
            // 128-bit digests; refuse it rather than reuse the login.
            if org != scope.org_id.as_uuid() || client != scope.client_id.map(|c| c.as_uuid()) {
                return Err(ReportingError::Foreign(login));
            }
            true
        }
    };
    Ok((login, State { role, oid, mapped }))
}

/// The audit row of an action on a login, as `strata_owner` (whose policy
/// allows rows about reporting logins only). No user or key acted: the
/// details name the database role that ran the command.
async fn audit(
    conn: &impl ConnectionTrait,
    scope: Scope,
    operation: &str,
    login: &str,
) -> Result<(), ReportingError> {
    execute(
        conn,
        "INSERT INTO public.audit_log (org_id, id, client_id, operation, target_type, details) \
         VALUES ($1, $2, $3, $4, 'ReportingLogin', \
                 jsonb_build_object('login', $5::text, 'operator', session_user::text))",
        vec![
            scope.org_id.as_uuid().into(),
            Uuid::now_v7().into(),
            scope.client_id.map(|c| c.as_uuid()).into(),
            operation.into(),
            login.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Ends the sessions of the role with `oid`, after the transaction that
/// changed it committed. `None` when the login role may not (it needs
/// `pg_signal_backend` or to be a superuser).
async fn end_sessions(db: &Db, oid: Option<i64>) -> Option<u64> {
    let oid = oid?;
    let row = db
        .raw()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS ended \
             FROM pg_stat_activity WHERE usesysid = $1::bigint::oid AND pid <> pg_backend_pid()",
            vec![oid.into()],
        ))
        .await
        .ok()??;
    row.try_get::<i64>("", "ended")
        .ok()
        .map(|n| u64::try_from(n).unwrap_or(0))
}

async fn execute(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<(), DbErr> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map(|_| ())
}

async fn one<T: sea_orm::TryGetable>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<T, DbErr> {
    conn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?
    .ok_or_else(|| DbErr::RecordNotFound(sql.to_owned()))?
    .try_get_by_index(0)
}

/// That `scope`'s organization, and client if any, exist (read as the
/// migrating superuser, which row-level security does not filter).
async fn check_scope_exists(txn: &DatabaseTransaction, scope: Scope) -> Result<(), ReportingError> {
    let org = scope.org_id.as_uuid();
    let (sql, values): (&str, Vec<sea_orm::Value>) = match scope.client_id {
        None => (
            "SELECT 1 AS one FROM public.organizations WHERE id = $1",
            vec![org.into()],
        ),
        Some(client) => (
            "SELECT 1 AS one FROM public.organizations o \
               JOIN tenant_b.workspace_entities w ON w.org_id = o.id \
              WHERE o.id = $1 AND w.id = $2",
            vec![org.into(), client.as_uuid().into()],
        ),
    };
    let found = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .is_some();
    match (found, scope.client_id) {
        (true, _) => Ok(()),
        (false, Some(client)) => Err(ReportingError::NoSuchClient {
            org: scope.org_id,
            client,
        }),
        (false, None) => Err(ReportingError::NoSuchOrganization(scope.org_id)),
    }
}

/// On a Citus coordinator, makes every worker's `app.reporting_logins`
/// hold the coordinator's rows (`migration::citus::COPY_LOGINS_TO_WORKERS`;
/// the distribution migration creates the copies).
async fn copy_to_workers(db: &Db) -> Result<(), ReportingError> {
    if !db.is_citus() {
        return Ok(());
    }
    let copied = db
        .raw()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            migration::citus::COPY_LOGINS_TO_WORKERS,
        ))
        .await?;
    for row in copied {
        let success: bool = row.try_get("", "success")?;
        if !success {
            let result: String = row.try_get("", "result")?;
            return Err(ReportingError::Database(DbErr::Custom(format!(
                "the login was saved on the coordinator but not copied to a worker ({result}); run the command again"
            ))));
        }
    }
    Ok(())
}

/// The constraint of a foreign-key violation, if `err` is one.
fn foreign_key(err: &DbErr) -> Option<String> {
    match crate::error::database_error_parts(err) {
        (Some(code), constraint) if code == "23503" => Some(constraint.unwrap_or_default()),
        _ => None,
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], ReportingError> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .map_err(|_| ReportingError::Database(DbErr::Custom("HMAC key".into())))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802,
/// RFC 7677): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
/// `CREATE ROLE ... PASSWORD` takes it as it is, so the password itself
/// never reaches the server. The password must need no SASLprep (ASCII
/// letters and digits need none).
fn scram_verifier(password: &str, salt: &[u8]) -> Result<String, ReportingError> {
    // Hi(): PBKDF2 with HMAC-SHA-256, one block.
    let mut u = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()])?;
    let mut salted = u;
    for _ in 1..SCRAM_ITERATIONS {
        u = hmac(password.as_bytes(), &[&u])?;
        for (s, b) in salted.iter_mut().zip(u) {
            *s ^= b;
        }
    }
    let client_key = hmac(&salted, &[b"Client Key"])?;
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"])?;
    Ok(format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_distinct_and_plain_identifiers() {
        let org = OrgId::from_uuid(Uuid::from_u128(1));
        let client = ClientId::from_uuid(Uuid::from_u128(2));
        let whole = Scope {
            org_id: org,
            client_id: None,
        };
        let one_client = Scope {
            org_id: org,
            client_id: Some(client),
        };
        let a = login_name("strata", whole);
        assert_eq!(a, login_name("strata", whole));
        assert_ne!(a, login_name("strata", one_client));
        assert_ne!(a, login_name("other", whole));
        assert!(a.len() <= 63 && a.starts_with(PREFIX));
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        assert!(!a.contains(&org.to_string().replace('-', "")[..8]));
    }

    #[test]
    fn the_verifier_is_rfc_7677s() {
        // RFC 7677's example: user "user", password "pencil", salt
        // W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations; its ClientProof and
        // ServerSignature follow from these keys.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier("pencil", &salt).unwrap();
        let (_, keys) = v.rsplit_once('$').unwrap();
        let (stored, server) = keys.split_once(':').unwrap();
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        // ServerSignature = HMAC(ServerKey, AuthMessage) from the RFC.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&BASE64.decode(server).unwrap(), &[auth.as_bytes()]).unwrap();
        assert_eq!(
            BASE64.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).
        let client_signature = hmac(&BASE64.decode(stored).unwrap(), &[auth.as_bytes()]).unwrap();
        let proof = BASE64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(
            BASE64.encode(Sha256::digest(&client_key)),
            stored,
            "StoredKey = H(ClientKey)"
        );
    }

    #[test]
    fn the_connection_string_swaps_only_the_credentials() {
        let base = SecretString::from(
            "postgres://admin:secret@db.internal:6432/strata?sslmode=require".to_owned(),
        );
        let url = connection_url(
            &base,
            "strata_report_x",
            &SecretString::from("pw".to_owned()),
        )
        .unwrap();
        assert_eq!(
            url.expose_secret(),
            "postgres://strata_report_x:pw@db.internal:6432/strata?sslmode=require"
        );
    }
}
