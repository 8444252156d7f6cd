//! The connection pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use secrecy::{ExposeSecret, SecretString};
use strata_domain::{DomainError, OrgId};

use crate::error::map_db_err;

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Upper bound of open connections.
    pub max_connections: u32,
    /// Connections kept open even when idle, opened in the background at
    /// start and reopened when one closes. Opening a connection under load
    /// is slow (the driver's SCRAM key derivation yields to the scheduler
    /// thousands of times, so a busy server takes seconds per connection),
    /// which a request waiting for it would feel.
    pub min_connections: u32,
    /// How long a request waits for a connection before it fails as
    /// unavailable.
    pub acquire_timeout: Duration,
    /// How long connecting may take at start-up.
    pub connect_timeout: Duration,
    /// Longest a statement of a request may run (`statement_timeout`, set
    /// in each request's first statement); `None` keeps the server's.
    pub statement_timeout: Option<Duration>,
    /// The URL leads to a pooler in transaction mode (PgBouncer
    /// `pool_mode = transaction`), which hands each transaction whichever
    /// server connection is free: nothing may outlive a transaction on a
    /// server session. Statements are then unnamed and prepared in the
    /// transaction that runs them, never cached per connection (a cached
    /// statement would be looked for in another session), and the run locks
    /// are held inside a transaction of their own.
    pub transaction_pooling: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: None,
            transaction_pooling: false,
        }
    }
}

/// What the login role is allowed to do by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRole {
    /// The role's name.
    pub name: String,
    /// It is a superuser.
    pub superuser: bool,
    /// It bypasses RLS.
    pub bypass_rls: bool,
}

impl LoginRole {
    /// A login role that could read every tenant's rows if a request ever ran
    /// without switching roles. Requests always switch, so this is a warning.
    pub fn is_privileged(&self) -> bool {
        self.superuser || self.bypass_rls
    }
}

/// Receives the database time of each tenant transaction when it ends:
/// the organization and the time its statements (its `BEGIN` and `COMMIT`
/// included) took.
#[derive(Clone)]
pub struct TenantMeter(Arc<dyn Fn(OrgId, Duration) + Send + Sync>);

impl TenantMeter {
    /// A meter calling `f`.
    pub fn new(f: impl Fn(OrgId, Duration) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn record(&self, org: OrgId, time: Duration) {
        (self.0)(org, time);
    }
}

impl std::fmt::Debug for TenantMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantMeter")
    }
}

/// The pool's connections at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections, idle or in use.
    pub open: u32,
    /// Open connections nobody uses.
    pub idle: u32,
    /// Requests waiting for a connection.
    pub waiting: u64,
    /// The pool's upper bound.
    pub max: u32,
}

/// A pool of connections to Strata's database.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// `statement_timeout` of request transactions, in milliseconds.
    statement_timeout_ms: Option<u64>,
    /// See [`PoolOptions::transaction_pooling`].
    transaction_pooling: bool,
    /// Request transactions waiting for a connection.
    waiting: Arc<AtomicU64>,
    /// Where tenant transactions report their database time.
    meter: Option<TenantMeter>,
    /// The database is a Citus coordinator: see [`Db::is_citus`].
    citus: bool,
}

impl Db {
    /// Connects, failing fast when the database is unreachable.
    pub async fn connect(url: &SecretString, opts: &PoolOptions) -> Result<Self, DbErr> {
        let mut co = ConnectOptions::new(url.expose_secret().to_owned());
        co.max_connections(opts.max_connections)
            .min_connections(opts.min_connections.min(opts.max_connections))
            .acquire_timeout(opts.acquire_timeout)
            .connect_timeout(opts.connect_timeout)
            .idle_timeout(Duration::from_secs(300))
            // A connection used within the last half minute is handed out
            // as it is; checking every one costs a round trip per request.
            // A broken connection still fails its request's first
            // statement, which reports the database unavailable.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .sqlx_logging(false);
        let conn = Database::connect(co).await?;
        // Unreadable (a database not yet created, say) counts as plain
        // PostgreSQL; the extension is created before Strata migrates.
        let citus = migration::citus::is_citus(&conn).await.unwrap_or(false);
        Ok(Self {
            conn,
            citus,
            statement_timeout_ms: opts
                .statement_timeout
                .filter(|t| !t.is_zero())
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
            transaction_pooling: opts.transaction_pooling,
            waiting: Arc::default(),
            meter: None,
        })
    }

    /// Reports each tenant transaction's database time to `meter`.
    pub fn with_tenant_meter(mut self, meter: TenantMeter) -> Self {
        self.meter = Some(meter);
        self
    }

    pub(crate) fn meter(&self) -> Option<&TenantMeter> {
        self.meter.as_ref()
    }

    /// Counts a request transaction waiting for a connection until the
    /// returned guard is dropped.
    pub(crate) fn wait(&self) -> impl Drop + use<> {
        struct Waiting(Arc<AtomicU64>);
        impl Drop for Waiting {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.waiting.clone())
    }

    /// The pool's connections now.
    pub fn status(&self) -> PoolStatus {
        let pool = self.pool();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        PoolStatus {
            open: pool.size(),
            idle,
            waiting: self.waiting.load(Ordering::Relaxed),
            max: pool.options().get_max_connections(),
        }
    }

    /// The raw connection, as the login role with no tenant context: for
    /// migrations (`strata migrate` hands it to the migrator), this crate's
    /// narrow maintenance transactions (which switch to a maintenance role
    /// first) and tests. Tenant data is never read through it, and it
    /// cannot reach the repositories, which take a [`crate::TenantTx`]
    /// only. In production the login role (`strata_gateway`) holds no
    /// privilege of its own and does not bypass row-level security, so it
    /// reads and writes no tenant row through this connection.
    pub fn raw(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The driver's pool under [`Self::raw`], for request transactions.
    pub(crate) fn pool(&self) -> &sea_orm::sqlx::PgPool {
        self.conn.get_postgres_connection_pool()
    }

    /// The `statement_timeout` of request transactions, in milliseconds.
    pub(crate) fn statement_timeout_ms(&self) -> Option<u64> {
        self.statement_timeout_ms
    }

    /// Whether the database is a Citus coordinator. Transactions then
    /// open with `app.begin_request()`, whose `SET LOCAL`s Citus forwards
    /// to the workers one by one (it forwards a `SET LOCAL` by the text of
    /// the message that held it, and the usual first message holds ten
    /// statements).
    pub fn is_citus(&self) -> bool {
        self.citus
    }

    /// Whether a pooler in transaction mode sits between the pool and the
    /// database: see [`PoolOptions::transaction_pooling`].
    pub(crate) fn transaction_pooling(&self) -> bool {
        self.transaction_pooling
    }

    /// Runs `sql` (no parameters) as one simple-protocol message: nothing is
    /// prepared, so it runs the same through a pooler in any mode.
    async fn simple_query(&self, sql: &'static str) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.simple(sql.to_owned()).await
    }

    /// Runs `sql` (no parameters, possibly several statements) as one
    /// simple-protocol message, returning the rows of every statement.
    pub(crate) async fn simple(&self, sql: String) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(crate::tx::query_err)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), DomainError> {
        self.conn.ping().await.map_err(map_db_err)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        use migration::MigratorTrait;
        migration::Migrator::up(&self.conn, None).await
    }

    /// The migrations this database has not run yet, by name. Reads the
    /// migration table only, which the production login role may do while
    /// it can change nothing (so an up-to-date schema needs no privileges).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbErr> {
        use migration::MigratorTrait;
        let applied: std::collections::HashSet<String> = self
            .simple_query("SELECT version FROM seaql_migrations")
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "version"))
            .collect::<Result<_, _>>()?;
        Ok(migration::Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect())
    }

    /// The privileges of the role the pool logs in as.
    pub async fn login_role(&self) -> Result<LoginRole, DbErr> {
        let row = self
            .simple_query(
                "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DbErr::RecordNotFound("current_user".into()))?;
        Ok(LoginRole {
            name: row.try_get("", "rolname")?,
            superuser: row.try_get("", "rolsuper")?,
            bypass_rls: row.try_get("", "rolbypassrls")?,
        })
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}
