//! Transactions that carry a tenant context.
//!
//! Every request runs in one transaction whose first message sets the
//! runtime role and the context with `SET LOCAL`, so nothing outlives the
//! transaction on a pooled connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{self, Postgres, SqlSafeStr};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, TransactionTrait, Value,
};
use sea_query_sqlx::SqlxValues;
use sqlx_core::transaction::TransactionManager as _;
use strata_domain::{ClientScope, DomainError, OrgType, TenantContext, UserId};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::db::Db;
use crate::error::map_db_err;

/// The first statement of an auth transaction (bound parameters): the
/// context, and whether the transaction has written nothing yet. A pooled
/// connection left inside an earlier transaction must never carry that
/// transaction's writes into this one's commit.
/// With a statement timeout, `$9` sets it.
const fn auth_begin_sql(timeout: bool) -> &'static str {
    if timeout {
        "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
         app.begin_request($1, $2, $3, $4, $5, $6, $7, $8), \
         set_config('statement_timeout', $9, true)"
    } else {
        "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
         app.begin_request($1, $2, $3, $4, $5, $6, $7, $8)"
    }
}

/// A transaction bound to one [`TenantContext`]. Holding one is the proof
/// that the database knows the tenant: the repository API takes it, never a
/// bare connection.
///
/// It implements [`ConnectionTrait`], so SeaORM queries run through it; it
/// counts the statements it runs.
///
/// Round trips: the `BEGIN` and the context go to the server as one message
/// (see [`begin_message`]); each query is one; a read-only transaction ends
/// without one of its own (its `ROLLBACK` travels with the pool's check of
/// the returned connection), a writing one with its `COMMIT`.
pub struct TenantTx {
    /// The connection while the transaction is open.
    inner: Mutex<Option<PoolConnection<Postgres>>>,
    ctx: TenantContext,
    read_only: bool,
    statements: AtomicU64,
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("org_id", &self.ctx.org_id())
            .field("read_only", &self.read_only)
            .field("statements", &self.statements.load(Ordering::Relaxed))
            .finish()
    }
}

/// The runtime role that serves an organization type.
pub(crate) const fn runtime_role(org_type: OrgType) -> &'static str {
    match org_type {
        OrgType::Sme => "app_sme",
        OrgType::Agency => "app_agency",
    }
}

/// Appends `value` as an escape string literal (`E'...'`): backslashes and
/// quotes are doubled, which reads back the same whatever
/// `standard_conforming_strings` is. Only ASCII graphic characters are kept
/// (the callers pass ids and request ids, which are nothing else).
fn push_literal(sql: &mut String, value: &str) {
    sql.push_str("E'");
    for c in value.chars() {
        match c {
            '\\' => sql.push_str("\\\\"),
            '\'' => sql.push_str("''"),
            c if c.is_ascii_graphic() => sql.push(c),
            _ => sql.push('_'),
        }
    }
    sql.push('\'');
}

fn push_set(sql: &mut String, name: &str, value: &str) {
    sql.push_str("; SET LOCAL ");
    sql.push_str(name);
    sql.push_str(" = ");
    push_literal(sql, value);
}

/// The message that opens a request transaction: `BEGIN`, then `SET LOCAL`
/// of every context setting, the statement timeout and the runtime role,
/// sent together in one simple-protocol message (one round trip; the
/// extended protocol would need one per statement with this driver).
///
/// The values are rendered as literals, never taken as SQL: uuids, booleans
/// and a number are formatted from their types, the role is one of two
/// constants, and the request id (the only text from outside) is an escaped
/// literal of ASCII graphic characters. `SET LOCAL` rather than
/// `set_config()` keeps the settings forwarded by Citus. Reads run in one
/// `REPEATABLE READ` snapshot: a page, its `totalCount` and its nested
/// lists agree with each other.
///
/// `SET TRANSACTION ISOLATION LEVEL` is refused once a transaction has run
/// a query. Setting it twice, to two different levels (one of which is
/// therefore a change), makes the message fail on a connection that is
/// still inside an earlier transaction (one opened behind the driver's
/// back), instead of joining that transaction and committing its writes.
fn begin_message(ctx: &TenantContext, read_only: bool, timeout_ms: Option<u64>) -> String {
    let mut sql = String::with_capacity(640);
    sql.push_str(if read_only {
        "BEGIN READ ONLY; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
         SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    } else {
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
         SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
    });
    push_set(&mut sql, "app.org_id", &ctx.org_id().as_uuid().to_string());
    let user = ctx
        .actor()
        .user_id()
        .map(|u| u.as_uuid().to_string())
        .unwrap_or_default();
    push_set(&mut sql, "app.user_id", &user);
    let (client_ids, all_clients) = match ctx.clients() {
        ClientScope::All => (String::from("{}"), true),
        ClientScope::Only(ids) => {
            let mut list = String::from("{");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&id.as_uuid().to_string());
            }
            list.push('}');
            (list, false)
        }
    };
    push_set(&mut sql, "app.client_ids", &client_ids);
    push_set(&mut sql, "app.all_clients", bool_text(all_clients));
    push_set(&mut sql, "app.can_write", bool_text(ctx.can_write()));
    push_set(&mut sql, "app.api_key_hash", "");
    push_set(&mut sql, "app.request_id", ctx.request_id());
    if let Some(ms) = timeout_ms {
        push_set(&mut sql, "statement_timeout", &format!("{ms}ms"));
    }
    sql.push_str("; SET LOCAL ROLE ");
    sql.push_str(runtime_role(ctx.org_type()));
    sql
}

type TxManager = <Postgres as sqlx::Database>::TransactionManager;

const fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A driver error as the `DbErr` the rest of the crate maps.
fn query_err(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)) => {
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)))
        }
        e => DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))),
    }
}

fn exec_err(err: sqlx::Error) -> DbErr {
    match query_err(err) {
        DbErr::Query(e) => DbErr::Exec(e),
        other => other,
    }
}

impl TenantTx {
    /// Begins a transaction for `ctx`. The first message sets the runtime
    /// role and the context, transaction-locally.
    pub async fn begin(db: &Db, ctx: &TenantContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, false).await
    }

    /// Begins a read-only transaction (`READ ONLY`): a request that only
    /// reads can write nothing, whatever runs in it.
    pub async fn begin_read_only(db: &Db, ctx: &TenantContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, true).await
    }

    async fn begin_inner(
        db: &Db,
        ctx: &TenantContext,
        read_only: bool,
    ) -> Result<Self, DomainError> {
        let message = begin_message(ctx, read_only, db.statement_timeout_ms());
        let mut conn = db
            .pool()
            .acquire()
            .await
            .map_err(|e| map_db_err(query_err(e)))?;
        // The driver refuses a custom BEGIN on a connection it knows to be
        // inside a transaction, checks that the server is inside one
        // afterwards, and from then on tracks it (a dropped transaction
        // queues its ROLLBACK).
        let begun =
            TxManager::begin(&mut conn, Some(sqlx::AssertSqlSafe(message).into_sql_str())).await;
        if let Err(e) = begun {
            // A statement after BEGIN failed: the server may be inside a
            // transaction block the driver does not know of. The connection
            // is closed rather than handed out again.
            conn.close_on_drop();
            return Err(map_db_err(query_err(e)));
        }
        Ok(Self {
            inner: Mutex::new(Some(conn)),
            ctx: ctx.clone(),
            read_only,
            statements: AtomicU64::new(1),
        })
    }

    /// The context this transaction serves.
    pub fn ctx(&self) -> &TenantContext {
        &self.ctx
    }

    /// Statements run so far, including the context statement.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Commits. Later use of this transaction fails. A read-only
    /// transaction has nothing to commit: it is rolled back instead, with
    /// no round trip of its own (the `ROLLBACK` is sent with the pool's
    /// check of the returned connection).
    pub async fn commit(&self) -> Result<(), DomainError> {
        let conn = self.inner.lock().await.take();
        match conn {
            Some(mut conn) if !self.read_only => {
                let done = TxManager::commit(&mut conn).await;
                if done.is_err() {
                    TxManager::start_rollback(&mut conn);
                }
                done.map_err(|e| map_db_err(exec_err(e)))
            }
            Some(mut conn) => {
                TxManager::start_rollback(&mut conn);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Rolls back. Later use of this transaction fails.
    pub async fn rollback(&self) -> Result<(), DomainError> {
        let conn = self.inner.lock().await.take();
        match conn {
            Some(mut conn) => {
                let done = TxManager::rollback(&mut conn).await;
                if done.is_err() {
                    TxManager::start_rollback(&mut conn);
                }
                done.map_err(|e| map_db_err(exec_err(e)))
            }
            None => Ok(()),
        }
    }

    /// Opens a savepoint: one mutation's changes, undone alone if it fails.
    pub async fn savepoint(&self) -> Result<(), DomainError> {
        self.execute_unprepared("SAVEPOINT strata_mutation")
            .await
            .map(|_| ())
            .map_err(map_db_err)
    }

    /// Releases the savepoint (`keep`) or rolls back to it.
    pub async fn end_savepoint(&self, keep: bool) -> Result<(), DomainError> {
        let sql = if keep {
            "RELEASE SAVEPOINT strata_mutation"
        } else {
            "ROLLBACK TO SAVEPOINT strata_mutation"
        };
        self.execute_unprepared(sql)
            .await
            .map(|_| ())
            .map_err(map_db_err)
    }

    fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        // Queued, not awaited: it is sent before anything else on the
        // connection, with the pool's check of the returned connection.
        if let Some(conn) = self.inner.get_mut().as_mut() {
            TxManager::start_rollback(conn);
        }
    }
}

fn finished() -> DbErr {
    DbErr::Custom("the tenant transaction has already finished".into())
}

/// A SeaORM statement as a driver query: its SQL (a prepared statement the
/// connection caches) and its bound values.
fn driver_query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.count();
        let mut guard = self.inner.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(&stmt)
            .execute(&mut **conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.count();
        let mut guard = self.inner.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.count();
        let mut guard = self.inner.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(&stmt)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.count();
        let mut guard = self.inner.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(&stmt)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }

    fn support_returning(&self) -> bool {
        true
    }
}

/// A transaction for resolving a credential into a tenant context, as the
/// `app_auth` role: it sees only the presenting user's own rows (or the
/// presented API key's). It cannot read any tenant content.
pub struct AuthTx {
    txn: DatabaseTransaction,
}

impl std::fmt::Debug for AuthTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthTx")
    }
}

impl AuthTx {
    /// Begins resolution for a user (from a verified token).
    pub async fn for_user(db: &Db, user: UserId, request_id: &str) -> Result<Self, DomainError> {
        Self::begin(db, Some(user.as_uuid()), None, request_id).await
    }

    /// Begins resolution for an API key, by the hash of the presented secret.
    pub async fn for_api_key(
        db: &Db,
        key_hash: &str,
        request_id: &str,
    ) -> Result<Self, DomainError> {
        Self::begin(db, None, Some(key_hash.to_owned()), request_id).await
    }

    async fn begin(
        db: &Db,
        user: Option<Uuid>,
        key_hash: Option<String>,
        request_id: &str,
    ) -> Result<Self, DomainError> {
        let values: Vec<Value> = vec![
            "app_auth".into(),
            Option::<Uuid>::None.into(),
            user.into(),
            Vec::<Uuid>::new().into(),
            false.into(),
            false.into(),
            key_hash.into(),
            request_id.to_owned().into(),
        ];
        let txn = auth_begin(db, values).await.map_err(map_db_err)?;
        Ok(Self { txn })
    }

    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Commits (user provisioning and key usage are written).
    pub async fn commit(self) -> Result<(), DomainError> {
        self.txn.commit().await.map_err(map_db_err)
    }
}

async fn auth_begin(db: &Db, mut values: Vec<Value>) -> Result<DatabaseTransaction, DbErr> {
    let timeout = db.statement_timeout_ms();
    if let Some(ms) = timeout {
        values.push(format!("{ms}ms").into());
    }
    // READ COMMITTED is PostgreSQL's default: naming it would cost a round
    // trip.
    let txn = db.raw().begin_with_config(None, None).await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            auth_begin_sql(timeout.is_some()),
            values,
        ))
        .await?;
    let fresh: bool = match &row {
        Some(row) => row.try_get("", "fresh")?,
        None => false,
    };
    if !fresh {
        // Rolling back (on drop) ends the earlier transaction too.
        tracing::error!("a pooled connection was still inside an earlier transaction; rolled back");
        return Err(DbErr::Custom(
            "the connection was still inside an earlier transaction".into(),
        ));
    }
    Ok(txn)
}
