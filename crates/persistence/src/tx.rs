//! Transactions that carry a tenant context.
//!
//! Every request runs in one transaction whose first statement is
//! `app.begin_request(...)`: it `SET LOCAL`s the runtime role and the
//! context, so nothing outlives the transaction on a pooled connection.

use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    TransactionTrait, Value,
};
use strata_domain::{ClientScope, DomainError, OrgType, TenantContext, UserId};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::db::Db;
use crate::error::map_db_err;

/// The first statement of a request transaction: the context, optionally a
/// statement timeout ($9) and read-only mode, all in one round trip. Its one
/// column, `fresh`, says whether the transaction has written nothing yet: a
/// pooled connection left inside an earlier transaction (one whose request
/// was dropped mid-way) must never carry that transaction's writes into
/// this one's commit.
const fn begin_request_sql(timeout: bool, read_only: bool) -> &'static str {
    match (timeout, read_only) {
        (false, false) => {
            "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
             app.begin_request($1, $2, $3, $4, $5, $6, $7, $8)"
        }
        (true, false) => {
            "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
             app.begin_request($1, $2, $3, $4, $5, $6, $7, $8), \
             set_config('statement_timeout', $9, true)"
        }
        (false, true) => {
            "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
             app.begin_request($1, $2, $3, $4, $5, $6, $7, $8), \
             set_config('transaction_read_only', 'on', true)"
        }
        (true, true) => {
            "SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh, \
             app.begin_request($1, $2, $3, $4, $5, $6, $7, $8), \
             set_config('statement_timeout', $9, true), \
             set_config('transaction_read_only', 'on', true)"
        }
    }
}

/// A transaction bound to one [`TenantContext`]. Holding one is the proof
/// that the database knows the tenant: the repository API takes it, never a
/// bare connection.
///
/// It implements [`ConnectionTrait`], so SeaORM queries run through it; it
/// counts the statements it runs.
pub struct TenantTx {
    inner: RwLock<Option<DatabaseTransaction>>,
    ctx: TenantContext,
    statements: AtomicU64,
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("org_id", &self.ctx.org_id())
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

async fn begin_with(
    db: &Db,
    read_only: bool,
    values: Vec<Value>,
) -> Result<DatabaseTransaction, DbErr> {
    // No isolation level: READ COMMITTED is PostgreSQL's default, and naming
    // it costs a round trip per request. READ ONLY is set in the context
    // statement rather than by `SET TRANSACTION READ ONLY`, which would be a
    // round trip of its own: a transaction may always become read-only, and
    // no statement before it writes.
    let mut values = values;
    let timeout = db.statement_timeout_ms();
    if let Some(ms) = timeout {
        values.push(format!("{ms}ms").into());
    }
    let sql = begin_request_sql(timeout.is_some(), read_only);
    let txn = db.raw().begin_with_config(None, None).await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
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

impl TenantTx {
    /// Begins a transaction for `ctx`. The first statement sets the runtime
    /// role and the context, transaction-locally.
    pub async fn begin(db: &Db, ctx: &TenantContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, false).await
    }

    /// Begins a read-only transaction (`SET TRANSACTION READ ONLY`): a
    /// request that only reads can write nothing, whatever runs in it.
    pub async fn begin_read_only(db: &Db, ctx: &TenantContext) -> Result<Self, DomainError> {
        Self::begin_inner(db, ctx, true).await
    }

    async fn begin_inner(
        db: &Db,
        ctx: &TenantContext,
        read_only: bool,
    ) -> Result<Self, DomainError> {
        let (client_ids, all_clients) = match ctx.clients() {
            ClientScope::All => (Vec::new(), true),
            ClientScope::Only(ids) => (ids.iter().map(|c| c.as_uuid()).collect(), false),
        };
        let values: Vec<Value> = vec![
            runtime_role(ctx.org_type()).into(),
            ctx.org_id().as_uuid().into(),
            ctx.actor().user_id().map(|u| u.as_uuid()).into(),
            client_ids.into(),
            all_clients.into(),
            ctx.can_write().into(),
            Option::<String>::None.into(),
            ctx.request_id().to_owned().into(),
        ];
        let txn = begin_with(db, read_only, values)
            .await
            .map_err(map_db_err)?;
        Ok(Self {
            inner: RwLock::new(Some(txn)),
            ctx: ctx.clone(),
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

    /// Commits. Later use of this transaction fails.
    pub async fn commit(&self) -> Result<(), DomainError> {
        match self.inner.write().await.take() {
            Some(txn) => txn.commit().await.map_err(map_db_err),
            None => Ok(()),
        }
    }

    /// Rolls back. Later use of this transaction fails.
    pub async fn rollback(&self) -> Result<(), DomainError> {
        match self.inner.write().await.take() {
            Some(txn) => txn.rollback().await.map_err(map_db_err),
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

fn finished() -> DbErr {
    DbErr::Custom("the tenant transaction has already finished".into())
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.count();
        let guard = self.inner.read().await;
        guard.as_ref().ok_or_else(finished)?.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.count();
        let guard = self.inner.read().await;
        guard
            .as_ref()
            .ok_or_else(finished)?
            .execute_unprepared(sql)
            .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.count();
        let guard = self.inner.read().await;
        guard
            .as_ref()
            .ok_or_else(finished)?
            .query_one_raw(stmt)
            .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.count();
        let guard = self.inner.read().await;
        guard
            .as_ref()
            .ok_or_else(finished)?
            .query_all_raw(stmt)
            .await
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
        let txn = begin_with(db, false, values).await.map_err(map_db_err)?;
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
