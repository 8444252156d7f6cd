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
    ConnAcquireErr, ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
};
use sea_query_sqlx::SqlxValues;
use sqlx_core::transaction::TransactionManager as _;
use strata_domain::{ClientScope, DomainError, OrgType, TenantContext, UserId};
use tokio::sync::Mutex;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::context::VerifiedContext;
use crate::db::Db;
use crate::error::map_db_err;

type TxManager = <Postgres as sqlx::Database>::TransactionManager;

/// The runtime role that serves an organization type.
pub(crate) const fn runtime_role(org_type: OrgType) -> &'static str {
    match org_type {
        OrgType::Sme => "app_sme",
        OrgType::Agency => "app_agency",
    }
}

/// What the first message of a request transaction sets.
struct Settings<'a> {
    /// One of the runtime roles (a constant, never input).
    role: &'static str,
    org_id: Option<Uuid>,
    user_id: Option<Uuid>,
    /// `None`: every client of the organization.
    client_ids: Option<&'a [strata_domain::ClientId]>,
    can_write: bool,
    /// May change memberships, clients, settings and API keys.
    can_administer: bool,
    api_key_hash: Option<&'a str>,
    request_id: &'a str,
}

/// Appends `value` as an escape string literal (`E'...'`): backslashes and
/// quotes are doubled, which reads back the same whatever
/// `standard_conforming_strings` is. Only ASCII graphic characters are kept
/// (the callers pass ids, hex digests and request ids, which are nothing
/// else).
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

const fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// The message that opens a request transaction: `BEGIN`, then `SET LOCAL`
/// of every context setting, the statement timeout and the runtime role,
/// sent together in one simple-protocol message (one round trip; the
/// extended protocol would need one per statement with this driver).
///
/// The values are rendered as literals, never taken as SQL: uuids, booleans
/// and a number are formatted from their types, the role is a constant, and
/// the texts (a hex digest, the request id) are escaped literals of ASCII
/// graphic characters. `SET LOCAL` rather than `set_config()` keeps the
/// settings forwarded by Citus. Reads run in one `REPEATABLE READ`
/// snapshot: a page, its `totalCount` and its nested lists agree.
///
/// `SET TRANSACTION ISOLATION LEVEL` is refused once a transaction has run
/// a query. Setting it twice, to two different levels (one of which is
/// therefore a change), makes the message fail on a connection that is
/// still inside an earlier transaction, instead of joining that
/// transaction and committing its writes.
fn begin_message(s: &Settings<'_>, read_only: bool, timeout_ms: Option<u64>) -> String {
    let mut sql = String::with_capacity(640);
    sql.push_str(begin_statements(read_only));
    let uuid_text = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    push_set(&mut sql, "app.org_id", &uuid_text(s.org_id));
    push_set(&mut sql, "app.user_id", &uuid_text(s.user_id));
    let list =
        crate::array::uuid_array(s.client_ids.unwrap_or_default().iter().map(|c| c.as_uuid()));
    push_set(&mut sql, "app.client_ids", &list);
    push_set(
        &mut sql,
        "app.all_clients",
        bool_text(s.client_ids.is_none()),
    );
    push_set(&mut sql, "app.can_write", bool_text(s.can_write));
    push_set(&mut sql, "app.can_administer", bool_text(s.can_administer));
    push_set(
        &mut sql,
        "app.api_key_hash",
        s.api_key_hash.unwrap_or_default(),
    );
    push_set(&mut sql, "app.request_id", s.request_id);
    if let Some(ms) = timeout_ms {
        push_set(&mut sql, "statement_timeout", &format!("{ms}ms"));
    }
    sql.push_str("; SET LOCAL ROLE ");
    sql.push_str(s.role);
    sql
}

/// `BEGIN` and the isolation level set twice (see [`begin_message`]).
pub(crate) const fn begin_statements(read_only: bool) -> &'static str {
    if read_only {
        "BEGIN READ ONLY; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
         SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    } else {
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
         SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
    }
}

/// [`begin_message`] for a Citus coordinator: the same settings, set by
/// `app.begin_request()`, whose `SET LOCAL`s each reach the workers as a
/// statement of their own once `citus.propagate_set_commands` is `local`
/// (turned on with `set_config()`, after the isolation level: Citus
/// forwards a `SET` by the text of the message that held it, which here
/// holds the call itself); the statement timeout with `set_config()`,
/// which stays on the coordinator (whose cancel stops the workers' parts).
/// The workers' part of a transaction runs at Citus's own isolation level,
/// `READ COMMITTED`.
fn begin_message_citus(s: &Settings<'_>, read_only: bool, timeout_ms: Option<u64>) -> String {
    let uuid_text = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    let list =
        crate::array::uuid_array(s.client_ids.unwrap_or_default().iter().map(|c| c.as_uuid()));
    let mut sql = String::with_capacity(640);
    sql.push_str(begin_statements(read_only));
    sql.push_str(
        "; SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true)\
         ; SELECT app.begin_request(",
    );
    push_literal(&mut sql, s.role);
    for (value, cast) in [
        (uuid_text(s.org_id), "::uuid"),
        (uuid_text(s.user_id), "::uuid"),
        (list, "::uuid[]"),
        (bool_text(s.client_ids.is_none()).to_owned(), "::boolean"),
        (bool_text(s.can_write).to_owned(), "::boolean"),
        (s.api_key_hash.unwrap_or_default().to_owned(), "::text"),
        (s.request_id.to_owned(), "::text"),
        (bool_text(s.can_administer).to_owned(), "::boolean"),
    ] {
        sql.push_str(", ");
        if value.is_empty() && cast == "::uuid" {
            sql.push_str("NULL::uuid");
        } else {
            push_literal(&mut sql, &value);
            sql.push_str(cast);
        }
    }
    sql.push(')');
    if let Some(ms) = timeout_ms {
        sql.push_str("; SELECT pg_catalog.set_config('statement_timeout', ");
        push_literal(&mut sql, &format!("{ms}ms"));
        sql.push_str(", true)");
    }
    sql
}

/// Runs `work` in a transaction of its own as `role` (one of the narrow
/// maintenance roles, never a tenant's: the run maintenance and the
/// quota's count on Citus), and commits. The transaction opens
/// like a request's: `BEGIN` and the role in one message (the isolation
/// level set twice refuses a connection still inside a transaction).
pub(crate) async fn as_role<T, F, Fut>(
    db: &Db,
    role: &'static str,
    work: F,
) -> Result<T, DomainError>
where
    F: FnOnce(RequestTx) -> Fut,
    Fut: std::future::Future<Output = Result<(RequestTx, T), sea_orm::DbErr>>,
{
    // On Citus, `set_config()`: a `SET LOCAL` would reach the workers as
    // the whole message, and the workers are reached as the role anyway.
    let message = if db.is_citus() {
        format!(
            "{}; SELECT pg_catalog.set_config('role', '{role}', true)",
            begin_statements(false)
        )
    } else {
        format!("{}; SET LOCAL ROLE {role}", begin_statements(false))
    };
    let txn = RequestTx::begin_with(db, message, false)
        .await
        .map_err(crate::error::map_db_err)?;
    let (txn, out) = work(txn).await.map_err(crate::error::map_db_err)?;
    txn.commit().await.map_err(crate::error::map_db_err)?;
    Ok(out)
}

/// Begins a plain transaction the driver tracks (for connections held
/// across requests, see `maintenance::RunLocks`).
pub(crate) async fn begin_plain(conn: &mut PoolConnection<Postgres>) -> Result<(), sqlx::Error> {
    TxManager::begin(conn, None).await
}

/// Commits a transaction begun by [`begin_plain`].
pub(crate) async fn commit_plain(conn: &mut PoolConnection<Postgres>) -> Result<(), sqlx::Error> {
    TxManager::commit(conn).await
}

/// A driver error as the `DbErr` the rest of the crate maps.
pub(crate) fn query_err(err: sqlx::Error) -> DbErr {
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

/// Nanoseconds since `started`.
fn nanos(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn finished() -> DbErr {
    DbErr::Custom("the transaction has already finished".into())
}

/// A pooled connection whose transaction state is unknown while a
/// `BEGIN`, `COMMIT` or `ROLLBACK` is in flight: if the future awaiting it
/// is dropped (a client went away, a deadline passed), the server may be
/// inside a transaction the driver does not know of. Dropped in that state,
/// the connection is rolled back by a task of its own before it goes back
/// to the pool (closing it instead would hold its place in the pool while
/// the close times out, and cost a reconnect).
struct InFlight(Option<PoolConnection<Postgres>>);

impl InFlight {
    fn conn(&mut self) -> Result<&mut PoolConnection<Postgres>, DbErr> {
        self.0.as_mut().ok_or_else(finished)
    }

    /// The state is known again: the connection may go back to the pool.
    fn settle(mut self) -> Option<PoolConnection<Postgres>> {
        self.0.take()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(mut conn) = self.0.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            conn.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            // The driver first reads what is still owed on the connection,
            // then sends the ROLLBACK (which only warns outside a
            // transaction). A connection that fails it is closed.
            let done = if TxManager::get_transaction_depth(&conn) > 0 {
                TxManager::rollback(&mut conn).await
            } else {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
            };
            if done.is_err() {
                conn.close_on_drop();
            }
        });
    }
}

/// One request transaction on one pooled connection, tracked by the
/// driver from `BEGIN` to its end.
///
/// Round trips: the `BEGIN` and the context go to the server as one message
/// (see [`begin_message`]); each query is one; a read-only transaction ends
/// without one of its own (its `ROLLBACK` travels with the pool's check of
/// the returned connection), a writing one with its `COMMIT`.
pub(crate) struct RequestTx {
    /// The connection while the transaction is open.
    conn: Mutex<Option<PoolConnection<Postgres>>>,
    read_only: bool,
    statements: AtomicU64,
    /// Statements are named and cached on the connection (false behind a
    /// pooler in transaction mode: see [`Db::transaction_pooling`]).
    persistent: bool,
}

impl RequestTx {
    async fn begin(db: &Db, settings: &Settings<'_>, read_only: bool) -> Result<Self, DbErr> {
        let message = if db.is_citus() {
            begin_message_citus(settings, read_only, db.statement_timeout_ms())
        } else {
            begin_message(settings, read_only, db.statement_timeout_ms())
        };
        Self::begin_with(db, message, read_only).await
    }

    /// Begins with `message` (SQL of constants only, starting with `BEGIN`).
    pub(crate) async fn begin_with(
        db: &Db,
        message: String,
        read_only: bool,
    ) -> Result<Self, DbErr> {
        let asked = std::time::Instant::now();
        let conn = {
            let _waiting = db.wait();
            db.pool().acquire().await.map_err(query_err)?
        };
        metrics::histogram!("strata_db_pool_acquire_seconds").record(asked.elapsed().as_secs_f64());
        let mut in_flight = InFlight(Some(conn));
        // The driver refuses a custom BEGIN on a connection it knows to be
        // inside a transaction, checks that the server is inside one
        // afterwards, and from then on tracks it. If a statement after
        // BEGIN fails, the server is left inside a transaction block the
        // driver does not know of: `in_flight` rolls it back.
        TxManager::begin(
            in_flight.conn()?,
            Some(sqlx::AssertSqlSafe(message).into_sql_str()),
        )
        .await
        .map_err(query_err)?;
        Ok(Self {
            conn: Mutex::new(in_flight.settle()),
            read_only,
            statements: AtomicU64::new(1),
            persistent: !db.transaction_pooling(),
        })
    }

    fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub(crate) async fn commit(&self) -> Result<(), DbErr> {
        let Some(mut conn) = self.conn.lock().await.take() else {
            return Ok(());
        };
        if self.read_only {
            // Nothing to commit: the queued ROLLBACK is sent with the
            // pool's check of the returned connection.
            TxManager::start_rollback(&mut conn);
            return Ok(());
        }
        let mut in_flight = InFlight(Some(conn));
        TxManager::commit(in_flight.conn()?)
            .await
            .map_err(exec_err)?;
        in_flight.settle();
        Ok(())
    }

    async fn rollback(&self) -> Result<(), DbErr> {
        let Some(conn) = self.conn.lock().await.take() else {
            return Ok(());
        };
        let mut in_flight = InFlight(Some(conn));
        TxManager::rollback(in_flight.conn()?)
            .await
            .map_err(exec_err)?;
        in_flight.settle();
        Ok(())
    }

    fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for RequestTx {
    fn drop(&mut self) {
        // Queued, not awaited: it is sent before anything else on the
        // connection, with the pool's check of the returned connection.
        if let Some(conn) = self.conn.get_mut().as_mut() {
            TxManager::start_rollback(conn);
        }
    }
}

/// A SeaORM statement as a driver query: its SQL and its bound values, both
/// moved, not copied. A `persistent` statement is named and cached by the
/// connection; otherwise it is the unnamed statement, prepared again each
/// time in the transaction that runs it.
fn driver_query(
    stmt: Statement,
    persistent: bool,
) -> sqlx::query::Query<'static, Postgres, SqlxValues> {
    let values = stmt
        .values
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql), SqlxValues(values)).persistent(persistent)
}

#[async_trait::async_trait]
impl ConnectionTrait for RequestTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.count();
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(stmt, self.persistent)
            .execute(&mut **conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.count();
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.count();
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(stmt, self.persistent)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.count();
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(finished)?;
        driver_query(stmt, self.persistent)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }

    fn support_returning(&self) -> bool {
        true
    }
}

/// A transaction bound to one [`TenantContext`]. Holding one is the proof
/// that the database knows the tenant: the repository API takes it, never a
/// bare connection.
///
/// It is begun only from a [`VerifiedContext`], which this crate alone
/// builds (from the database's answer about a credential, or for a new
/// organization); a [`TenantContext`] assembled elsewhere does not open
/// one:
///
/// ```compile_fail
/// # async fn forge(db: &strata_persistence::Db, ctx: &strata_domain::TenantContext) {
/// let _ = strata_persistence::TenantTx::begin(db, ctx).await;
/// # }
/// ```
///
/// ```no_run
/// # async fn resolved(db: &strata_persistence::Db, user: strata_domain::UserId) {
/// let ctx = strata_persistence::context::resolve_for(db, user, None, "r").await.unwrap();
/// let _ = strata_persistence::TenantTx::begin(db, &ctx).await;
/// # }
/// ```
///
/// It implements [`ConnectionTrait`], so SeaORM queries run through it; it
/// counts the statements it runs (the context statement included).
pub struct TenantTx {
    tx: RequestTx,
    ctx: TenantContext,
    /// The pool, on a Citus coordinator only: the few statements that must
    /// run as another role run in a transaction of their own there.
    citus: Option<Db>,
    /// Time spent in the database so far, in nanoseconds.
    db_nanos: AtomicU64,
    meter: Option<crate::db::TenantMeter>,
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if let Some(meter) = &self.meter {
            meter.record(
                self.ctx.org_id(),
                std::time::Duration::from_nanos(*self.db_nanos.get_mut()),
            );
        }
    }
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("org_id", &self.ctx.org_id())
            .field("read_only", &self.tx.read_only)
            .field("statements", &self.tx.statements())
            .finish()
    }
}

impl TenantTx {
    /// Begins a transaction for `ctx`. The first message sets the runtime
    /// role and the context, transaction-locally.
    pub async fn begin(db: &Db, ctx: &VerifiedContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, false).await
    }

    /// Begins a read-only transaction (`READ ONLY`): a request that only
    /// reads can write nothing, whatever runs in it.
    pub async fn begin_read_only(db: &Db, ctx: &VerifiedContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, true).await
    }

    async fn begin_inner(
        db: &Db,
        ctx: &VerifiedContext,
        read_only: bool,
    ) -> Result<Self, DomainError> {
        let ctx: &TenantContext = ctx;
        let settings = Settings {
            role: runtime_role(ctx.org_type()),
            org_id: Some(ctx.org_id().as_uuid()),
            user_id: ctx.actor().user_id().map(|u| u.as_uuid()),
            client_ids: match ctx.clients() {
                ClientScope::All => None,
                ClientScope::Only(ids) => Some(ids.as_slice()),
            },
            can_write: ctx.can_write(),
            can_administer: ctx.can_administer(),
            api_key_hash: None,
            request_id: ctx.request_id(),
        };
        let started = std::time::Instant::now();
        let tx = RequestTx::begin(db, &settings, read_only)
            .await
            .map_err(map_db_err)?;
        Ok(Self {
            tx,
            ctx: ctx.clone(),
            citus: db.is_citus().then(|| db.clone()),
            db_nanos: AtomicU64::new(nanos(started)),
            meter: db.meter().cloned(),
        })
    }

    /// The pool, when the database is a Citus coordinator.
    pub(crate) fn citus(&self) -> Option<&Db> {
        self.citus.as_ref()
    }

    /// Adds the time since `started` to the transaction's database time.
    fn timed(&self, started: std::time::Instant) {
        self.db_nanos.fetch_add(nanos(started), Ordering::Relaxed);
    }

    /// The context this transaction serves.
    pub fn ctx(&self) -> &TenantContext {
        &self.ctx
    }

    /// Statements run so far, including the context statement.
    pub fn statements(&self) -> u64 {
        self.tx.statements()
    }

    /// Commits. Later use of this transaction fails. A read-only
    /// transaction has nothing to commit: it is rolled back instead, with
    /// no round trip of its own.
    pub async fn commit(&self) -> Result<(), DomainError> {
        let started = std::time::Instant::now();
        let result = self.tx.commit().await.map_err(map_db_err);
        self.timed(started);
        result
    }

    /// Rolls back. Later use of this transaction fails.
    pub async fn rollback(&self) -> Result<(), DomainError> {
        let started = std::time::Instant::now();
        let result = self.tx.rollback().await.map_err(map_db_err);
        self.timed(started);
        result
    }

    /// Opens a savepoint: one mutation's changes, undone alone if it fails.
    pub async fn savepoint(&self) -> Result<(), DomainError> {
        // Raw SQL: transaction control, which the query builder has no form for.
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
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    // Each statement is timed for its tenant's database time, spanned for
    // traces, and each refusal by the database checked for drift
    // (`crate::drift`).
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let what = crate::drift::Statement::of(&stmt.sql);
        let span = what.span(&stmt.sql);
        let started = std::time::Instant::now();
        let result = self.tx.execute_raw(stmt).instrument(span).await;
        self.timed(started);
        self.drift(&what, result)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let what = crate::drift::Statement::of(sql);
        let started = std::time::Instant::now();
        let result = self
            .tx
            .execute_unprepared(sql)
            .instrument(what.span(sql))
            .await;
        self.timed(started);
        self.drift(&what, result)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let what = crate::drift::Statement::of(&stmt.sql);
        let span = what.span(&stmt.sql);
        let started = std::time::Instant::now();
        let result = self.tx.query_one_raw(stmt).instrument(span).await;
        self.timed(started);
        self.drift(&what, result)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let what = crate::drift::Statement::of(&stmt.sql);
        let span = what.span(&stmt.sql);
        let started = std::time::Instant::now();
        let result = self.tx.query_all_raw(stmt).instrument(span).await;
        self.timed(started);
        self.drift(&what, result)
    }

    fn support_returning(&self) -> bool {
        true
    }
}

impl TenantTx {
    fn drift<T>(
        &self,
        what: &crate::drift::Statement,
        result: Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        if let Err(e) = &result {
            what.check(e, &self.ctx);
        }
        result
    }
}

/// A transaction for resolving a credential into a tenant context, as the
/// `app_auth` role: it sees only the presenting user's own rows (or the
/// presented API key's). It cannot read any tenant content.
pub struct AuthTx {
    tx: RequestTx,
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
        Self::begin(db, None, Some(key_hash), request_id).await
    }

    async fn begin(
        db: &Db,
        user: Option<Uuid>,
        key_hash: Option<&str>,
        request_id: &str,
    ) -> Result<Self, DomainError> {
        let settings = Settings {
            role: "app_auth",
            org_id: None,
            user_id: user,
            client_ids: Some(&[]),
            can_write: false,
            can_administer: false,
            api_key_hash: key_hash,
            request_id,
        };
        let tx = RequestTx::begin(db, &settings, false)
            .await
            .map_err(map_db_err)?;
        Ok(Self { tx })
    }

    pub(crate) fn conn(&self) -> &impl ConnectionTrait {
        &self.tx
    }

    /// Sets one more context setting for the rest of the transaction
    /// (`SET LOCAL`, which Citus forwards to the workers): the verified
    /// e-mail, or the organizations of the memberships just read. `value`
    /// is rendered as a literal of ASCII graphic characters.
    pub(crate) async fn set(&self, name: &'static str, value: &str) -> Result<(), DomainError> {
        let mut sql = String::with_capacity(32 + value.len());
        sql.push_str("SET LOCAL ");
        sql.push_str(name);
        sql.push_str(" = ");
        push_literal(&mut sql, value);
        self.tx
            .execute_unprepared(&sql)
            .await
            .map(|_| ())
            .map_err(map_db_err)
    }

    /// Commits (user provisioning and key usage are written).
    pub async fn commit(self) -> Result<(), DomainError> {
        self.tx.commit().await.map_err(map_db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_message_holds_literals_only() {
        let settings = Settings {
            role: "app_auth",
            org_id: None,
            user_id: Some(Uuid::nil()),
            client_ids: Some(&[]),
            can_write: false,
            can_administer: false,
            api_key_hash: None,
            request_id: "a'b\\c; SET ROLE x\n",
        };
        let sql = begin_message(&settings, true, Some(250));
        assert!(sql.starts_with("BEGIN READ ONLY; "));
        assert!(sql.contains("SET LOCAL app.user_id = E'00000000-0000-0000-0000-000000000000'"));
        assert!(sql.contains("SET LOCAL app.all_clients = E'false'"));
        assert!(sql.contains("SET LOCAL app.can_administer = E'false'"));
        assert!(sql.contains(r"SET LOCAL app.request_id = E'a''b\\c;_SET_ROLE_x_'"));
        assert!(sql.contains("SET LOCAL statement_timeout = E'250ms'"));
        assert!(sql.ends_with("; SET LOCAL ROLE app_auth"));
    }

    #[test]
    fn the_citus_first_message_calls_begin_request_with_literals() {
        let ids = [strata_domain::ClientId::from_uuid(Uuid::nil())];
        let settings = Settings {
            role: "app_agency",
            org_id: Some(Uuid::nil()),
            user_id: None,
            client_ids: Some(&ids),
            can_write: true,
            can_administer: false,
            api_key_hash: None,
            request_id: "r'1",
        };
        let sql = begin_message_citus(&settings, false, Some(250));
        assert_eq!(
            sql,
            "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
             SET TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true); \
             SELECT app.begin_request(E'app_agency', E'00000000-0000-0000-0000-000000000000'::uuid, \
             NULL::uuid, E'{00000000-0000-0000-0000-000000000000}'::uuid[], E'false'::boolean, \
             E'true'::boolean, E''::text, E'r''1'::text, E'false'::boolean); \
             SELECT pg_catalog.set_config('statement_timeout', E'250ms', true)"
        );
    }
}
