//! Test harness: a real PostgreSQL and the real router, nothing mocked.
//!
//! One PostgreSQL cluster per test run (the same embedded bootstrap the
//! gateway uses), or the server named by `TEST_DATABASE_URL`. A template
//! database is migrated once; every test gets its own database cloned from
//! it, dropped when the test ends. `TEST_LOG=1` shows the gateway's logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod citus;
pub mod pgbouncer;
pub mod plan;
pub mod redis;
pub mod tier;
pub mod world;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use strata_domain::{OrgId, UserId};
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};
use strata_persistence::{Db, MigratorTrait, PoolOptions};
use tokio::sync::OnceCell;

struct Server {
    /// Superuser URL of the maintenance database, with the database name at
    /// the end so other databases' URLs can be derived. On Citus, the
    /// coordinator's.
    admin_url: String,
    /// On Citus, the workers' maintenance databases: every test database
    /// exists on every node under the same name.
    workers: Vec<String>,
    template: String,
    _cluster: Vec<EmbeddedPostgres>,
}

impl Server {
    /// Every node's maintenance database, the coordinator's first.
    fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.admin_url.as_str()).chain(self.workers.iter().map(String::as_str))
    }
}

static SERVER: OnceCell<Server> = OnceCell::const_new();
static CITUS: OnceCell<Server> = OnceCell::const_new();

fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("a valid database url");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

async fn admin(url: &str) -> DatabaseConnection {
    let mut co = ConnectOptions::new(url.to_owned());
    co.max_connections(1).sqlx_logging(false);
    Database::connect(co).await.expect("connect as admin")
}

/// Which PostgreSQL a test database lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One PostgreSQL (the embedded cluster or `TEST_DATABASE_URL`).
    Single,
    /// A Citus coordinator with two workers ([`citus`]).
    Citus,
}

impl Backend {
    /// The backend of [`TestDb::migrated`]: Citus under
    /// `STRATA_TEST_CITUS=1` (CI runs the isolation suites again so),
    /// otherwise one PostgreSQL.
    pub fn default_for_tests() -> Self {
        if std::env::var("STRATA_TEST_CITUS").is_ok_and(|v| v == "1") {
            Backend::Citus
        } else {
            Backend::Single
        }
    }
}

async fn server(backend: Backend) -> &'static Server {
    match backend {
        Backend::Single => SERVER.get_or_init(single_server).await,
        Backend::Citus => CITUS.get_or_init(citus_server).await,
    }
}

async fn single_server() -> Server {
    init_logs();
    let (admin_url, cluster) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => (url, vec![]),
        _ => {
            let pg = EmbeddedPostgres::start(&EmbeddedOptions {
                data_dir: private_dir("strata-test"),
                remove_on_exit: true,
                database: "postgres".into(),
                ..Default::default()
            })
            .await
            .expect("start the test PostgreSQL cluster");
            (pg.admin_url().expose_secret().to_owned(), vec![pg])
        }
    };
    let template = template_name();
    let conn = admin(&admin_url).await;
    conn.execute_unprepared(&format!("CREATE DATABASE {template}"))
        .await
        .expect("create template database");
    conn.close().await.ok();
    let tconn = admin(&with_database(&admin_url, &template)).await;
    strata_persistence::Migrator::up(&tconn, None)
        .await
        .expect("migrate the template database");
    tconn.close().await.ok();
    Server {
        admin_url,
        workers: vec![],
        template,
        _cluster: cluster,
    }
}

async fn citus_server() -> Server {
    init_logs();
    assert!(
        citus::installed(),
        "the Citus tier needs the citus extension: {}",
        citus::INSTALL
    );
    let (nodes, urls) = citus::start_nodes().await;
    let ports: Vec<u16> = nodes.iter().map(EmbeddedPostgres::port).collect();
    let template = template_name();
    citus::create_database(&urls, &ports, &template).await;
    let tconn = admin(&with_database(&urls[0], &template)).await;
    strata_persistence::Migrator::up(&tconn, None)
        .await
        .expect("migrate the template database on Citus");
    tconn.close().await.ok();
    citus::close_to_connections(&urls, &template).await;
    let mut urls = urls.into_iter();
    Server {
        admin_url: urls.next().expect("a coordinator"),
        workers: urls.collect(),
        template,
        _cluster: nodes,
    }
}

/// A new directory under the system's temporary directory, for a cluster.
pub fn private_dir(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

fn template_name() -> String {
    format!(
        "strata_template_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
    }
}

/// A database of its own for one test, dropped afterwards.
pub struct TestDb {
    /// Superuser URL of this database.
    pub url: SecretString,
    /// Its name.
    pub name: String,
    admin_url: String,
    /// On Citus, the workers' maintenance databases (the database exists
    /// on each).
    workers: Vec<String>,
    /// Dropped with this handle (false for handles of a database another
    /// handle owns).
    owned: bool,
}

impl TestDb {
    /// A fresh database cloned from the migrated template, on the
    /// [default backend](Backend::default_for_tests).
    pub async fn migrated() -> Self {
        Self::migrated_on(Backend::default_for_tests()).await
    }

    /// A fresh database cloned from the migrated template on `backend`.
    pub async fn migrated_on(backend: Backend) -> Self {
        let s = server(backend).await;
        Self::create(s, Some(&s.template)).await
    }

    /// A fresh, empty database (no migrations) on the default backend; on
    /// Citus it has the extension and knows its workers.
    pub async fn empty() -> Self {
        Self::empty_on(Backend::default_for_tests()).await
    }

    /// A fresh, empty database on `backend`.
    pub async fn empty_on(backend: Backend) -> Self {
        let s = server(backend).await;
        let db = Self::create(s, None).await;
        if backend == Backend::Citus {
            let urls: Vec<String> = s.nodes().map(str::to_owned).collect();
            let ports: Vec<u16> = s._cluster.iter().map(EmbeddedPostgres::port).collect();
            citus::join(&urls, &ports, &db.name).await;
        }
        db
    }

    /// Whether this database is on Citus.
    pub fn is_citus(&self) -> bool {
        !self.workers.is_empty()
    }

    async fn create(s: &Server, template: Option<&str>) -> Self {
        let name = format!("strata_test_{}", uuid::Uuid::new_v4().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        for node in s.nodes() {
            let conn = admin(node).await;
            citus::retry_while_busy(&conn, &sql, template).await;
            conn.close().await.ok();
        }
        Self {
            url: SecretString::from(with_database(&s.admin_url, &name)),
            name,
            admin_url: s.admin_url.clone(),
            workers: s.workers.clone(),
            owned: true,
        }
    }

    /// Another handle on this database, which does not drop it.
    pub fn shared(&self) -> Self {
        Self {
            url: self.url.clone(),
            name: self.name.clone(),
            admin_url: self.admin_url.clone(),
            workers: self.workers.clone(),
            owned: false,
        }
    }

    /// A pool on this database, logging in as the superuser (as development
    /// setups do); requests still switch to runtime roles.
    pub async fn pool(&self, max_connections: u32) -> Db {
        Db::connect(
            &self.url,
            &PoolOptions {
                max_connections,
                acquire_timeout: Duration::from_secs(10),
                ..PoolOptions::default()
            },
        )
        .await
        .expect("connect to the test database")
    }

    /// A single superuser connection, for arranging and inspecting data
    /// behind the gateway's back.
    pub async fn superuser(&self) -> DatabaseConnection {
        admin(self.url.expose_secret()).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let nodes: Vec<String> = std::iter::once(self.admin_url.clone())
            .chain(self.workers.iter().cloned())
            .collect();
        let name = self.name.clone();
        // Dropping needs async I/O; do it on a short-lived runtime of its
        // own, in a thread nobody waits for: this drop runs inside the
        // test's runtime, which must go on to finish (or drop) what the
        // gateway still has in flight -- a connection half-way through
        // authentication would otherwise hold `DROP DATABASE` until the
        // server's authentication timeout. The cluster goes with the test
        // process anyway.
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    for node in nodes {
                        let conn = admin(&node).await;
                        let _ = conn
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        conn.close().await.ok();
                    }
                });
            }
        });
    }
}

/// Run first in a transaction that sets a tenant context statement by
/// statement (as the gateway's Citus path does in its first message): on a
/// Citus coordinator the `SET LOCAL`s of `app.begin_request()` then reach
/// the workers; on one PostgreSQL it sets a placeholder and does nothing.
/// Without it, a context-less shard would show nothing, and an isolation
/// test would pass for the wrong reason.
pub const CITUS_PROPAGATE: &str =
    "SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true)";

/// An HS256 token of exactly `claims`, signed with [`SECRET`] (tokens
/// shaped like an identity provider's: any `sub`, `amr`, `iat`, ...).
pub fn signed(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign a test token")
}

/// The HS256 secret test apps use.
pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256-use";

/// A gateway on a real socket, on its own database.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The gateway's pool.
    pub db: Db,
    /// The database behind it.
    pub test_db: TestDb,
    client: reqwest::Client,
    issuer: Option<String>,
    audience: Option<String>,
}

/// How to configure a [`TestApp`]; [`TestApp::spawn`] takes the defaults:
/// the HS256 [`SECRET`], no JWKS, no issuer or audience, and the gateway's
/// default auth cache time-to-live.
#[derive(Clone, Debug)]
pub struct TestAppBuilder {
    secret: Option<String>,
    jwks_url: Option<String>,
    issuer: Option<String>,
    claims: strata_server::config::ClaimNames,
    audience: Option<String>,
    auth_cache_ttl: Duration,
    retention_sweep_interval: Duration,
    llm: Option<strata_agents::OpenAiConfig>,
    monthly_token_quota: Option<u64>,
    /// Agent runs at once, overall and per organization.
    agent_concurrency: (usize, usize),
    limits: strata_graphql::Limits,
    http: strata_server::config::HttpConfig,
    rate_limits: strata_server::ratelimit::RateLimitConfig,
    redis_url: Option<String>,
    statement_timeout: Option<Duration>,
    transaction_pooling: bool,
    demo: bool,
    backend: Backend,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            secret: Some(SECRET.to_owned()),
            jwks_url: None,
            issuer: None,
            claims: Default::default(),
            audience: None,
            auth_cache_ttl: strata_server::config::DEFAULT_AUTH_CACHE_TTL,
            retention_sweep_interval: Duration::ZERO,
            llm: None,
            monthly_token_quota: None,
            agent_concurrency: (4, 2),
            limits: strata_graphql::Limits::default(),
            http: strata_server::config::HttpConfig::default(),
            // Off unless a test turns them on: other tests send bursts.
            rate_limits: strata_server::ratelimit::RateLimitConfig::off(),
            redis_url: None,
            statement_timeout: Some(strata_server::config::DEFAULT_STATEMENT_TIMEOUT),
            transaction_pooling: false,
            demo: false,
            backend: Backend::default_for_tests(),
        }
    }
}

impl TestAppBuilder {
    /// No HS256 secret: only JWKS keys verify tokens.
    pub fn without_secret(mut self) -> Self {
        self.secret = None;
        self
    }

    /// Verify RS256/ES256 tokens with the keys served at `url`.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Require this `iss` (and put it in [`TestApp::token`]'s tokens).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Read the organization, e-mail and name from these claims.
    pub fn claims(mut self, claims: strata_server::config::ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    /// Require this `aud` (and put it in [`TestApp::token`]'s tokens).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How often the retention sweep runs (never by default).
    pub fn retention_sweep_interval(mut self, every: Duration) -> Self {
        self.retention_sweep_interval = every;
        self
    }

    /// How long resolved users are cached; zero turns the cache off.
    pub fn auth_cache_ttl(mut self, ttl: Duration) -> Self {
        self.auth_cache_ttl = ttl;
        self
    }

    /// Run agents on this OpenAI-compatible provider instead of the offline
    /// model.
    pub fn llm(mut self, config: strata_agents::OpenAiConfig) -> Self {
        self.llm = Some(config);
        self
    }

    /// Limit each organization's agent runs to this many tokens a month.
    pub fn monthly_token_quota(mut self, tokens: u64) -> Self {
        self.monthly_token_quota = Some(tokens);
        self
    }

    /// Run at most `overall` agent runs at once, and `per_org` of one
    /// organization (4 and 2 unless told).
    pub fn agent_concurrency(mut self, overall: usize, per_org: usize) -> Self {
        self.agent_concurrency = (overall, per_org);
        self
    }

    /// GraphQL limits other than the defaults.
    pub fn limits(mut self, limits: strata_graphql::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// HTTP options other than the defaults.
    pub fn http(mut self, http: strata_server::config::HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Turn rate limits on (they are off in tests by default).
    pub fn rate_limits(mut self, limits: strata_server::ratelimit::RateLimitConfig) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Keep rate limits and persisted queries in this Redis.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// The database statement timeout of requests.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Seed the demo tenants and offer their users in GraphiQL, as
    /// `serve --demo` does.
    pub fn demo(mut self, on: bool) -> Self {
        self.demo = on;
        self
    }

    /// The database URL leads to a pooler in transaction mode.
    pub fn transaction_pooling(mut self, on: bool) -> Self {
        self.transaction_pooling = on;
        self
    }

    /// The database's backend (one PostgreSQL or Citus).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Starts the gateway on port 0 against a fresh migrated database.
    pub async fn spawn(self) -> TestApp {
        self.try_spawn().await.expect("build the application")
    }

    /// Starts a second gateway on `other`'s database (as another replica
    /// would), with this builder's settings.
    pub async fn spawn_beside(self, other: &TestApp) -> TestApp {
        let config = self.config(other.test_db.url.clone());
        self.launch(config, other.test_db.shared())
            .await
            .expect("build the second application")
    }

    /// Starts a second gateway on `other`'s database reached at `url` (a
    /// pooler in front of it, say), with this builder's settings.
    pub async fn spawn_beside_on(self, other: &TestApp, url: SecretString) -> TestApp {
        let config = self.config(url);
        self.launch(config, other.test_db.shared())
            .await
            .expect("build the second application")
    }

    fn config(&self, url: SecretString) -> strata_server::Config {
        strata_server::Config {
            database: strata_server::config::DatabaseConfig::Url(url),
            listen: "127.0.0.1:0".parse().unwrap(),
            jwt: strata_server::config::JwtConfig {
                secret: self.secret.clone().map(SecretString::from),
                jwks_url: self.jwks_url.clone(),
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                claims: self.claims.clone(),
            },
            auth_cache_ttl: self.auth_cache_ttl,
            agents: strata_server::config::AgentsConfig {
                llm: self.llm.clone(),
                max_concurrent: self.agent_concurrency.0,
                max_per_org: self.agent_concurrency.1,
                monthly_token_quota: self.monthly_token_quota,
                offline_piece_delay: Duration::ZERO,
                retention_sweep_interval: self.retention_sweep_interval,
            },
            migrate: false,
            demo: self.demo,
            db_max_connections: 8,
            db_min_connections: 0,
            limits: self.limits.clone(),
            http: self.http.clone(),
            rate_limits: self.rate_limits.clone(),
            redis_url: self.redis_url.clone().map(SecretString::from),
            statement_timeout: self.statement_timeout,
            db_transaction_pooling: self.transaction_pooling,
        }
    }

    /// Like [`TestAppBuilder::spawn`], returning the start-up error.
    pub async fn try_spawn(self) -> anyhow::Result<TestApp> {
        let test_db = TestDb::migrated_on(self.backend).await;
        let config = self.config(test_db.url.clone());
        self.launch(config, test_db).await
    }

    /// Builds the application from `config` and serves it in the background.
    async fn launch(
        self,
        config: strata_server::Config,
        test_db: TestDb,
    ) -> anyhow::Result<TestApp> {
        let app = strata_server::Application::build(config).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Ok(TestApp {
            base,
            db,
            test_db,
            client: reqwest::Client::new(),
            issuer: self.issuer,
            audience: self.audience,
        })
    }
}

impl TestDb {
    /// A URL of this database that logs in as `role`, after giving it a
    /// password and the right to log in (roles are cluster-wide; the password
    /// is new each time).
    pub async fn url_logging_in_as(&self, role: &str) -> SecretString {
        let password = uuid::Uuid::new_v4().simple().to_string();
        let su = self.superuser().await;
        su.execute_unprepared(&format!("ALTER ROLE {role} LOGIN PASSWORD '{password}'"))
            .await
            .expect("let the role log in");
        su.close().await.ok();
        // postgres://postgres:<pw>@host...: swap the credentials.
        let url = self.url.expose_secret();
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
        let (_, at) = rest.split_once('@').unwrap_or(("", rest));
        SecretString::from(format!("{scheme}://{role}:{password}@{at}"))
    }
}

impl TestAppBuilder {
    /// Starts the gateway as `strata serve` does by default, migrating
    /// first, on `test_db` through `url` (e.g. another login role's).
    pub async fn try_spawn_migrating(
        self,
        test_db: TestDb,
        url: SecretString,
    ) -> anyhow::Result<TestApp> {
        let mut config = self.config(url);
        config.migrate = true;
        self.launch(config, test_db).await
    }

    /// Starts the gateway on `test_db` through `url` (e.g. a pooler's)
    /// without migrating: the database is already up to date.
    pub async fn spawn_on(self, test_db: TestDb, url: SecretString) -> TestApp {
        let config = self.config(url);
        self.launch(config, test_db)
            .await
            .expect("build the application")
    }
}

impl TestApp {
    /// Starts the gateway on port 0 against a fresh migrated database.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// A gateway configured otherwise than [`TestApp::spawn`]'s.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// A token for `user` acting in `org`.
    pub fn token(&self, user: UserId, org: Option<OrgId>) -> String {
        strata_server::auth::mint(
            &SecretString::from(SECRET),
            user,
            org,
            None,
            Duration::from_secs(3600),
            self.issuer.as_deref(),
            self.audience.as_deref(),
        )
        .unwrap()
    }

    /// Posts a GraphQL operation; returns the status and the JSON body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send graphql request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Posts `body` (a GraphQL-over-HTTP request object) to `/graphql`;
    /// returns the status and the JSON body.
    pub async fn graphql_body(
        &self,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send graphql request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GETs a path; returns the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// The value of the Prometheus series `series` (its name and labels
    /// exactly as `/metrics` prints them), or 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get_text("/metrics").await;
        metric_value(&text, series)
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> u16 {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send request")
            .status()
            .as_u16()
    }
}

/// The value of the series `series` (name and labels as printed) in a
/// Prometheus text exposition, or 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &serde_json::Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The first column of the first row of `sql`.
async fn first_value<T: sea_orm::TryGetable>(conn: &impl ConnectionTrait, sql: &str) -> T {
    conn.query_one_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        sql.to_owned(),
    ))
    .await
    .expect("run the query")
    .expect("a row")
    .try_get_by_index::<T>(0)
    .expect("a value of the expected type")
}

/// The first column of the first row of `sql`, as a number (counts).
pub async fn scalar(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    first_value(conn, sql).await
}

/// The first column of the first row of `sql`, as text (or NULL).
pub async fn text(conn: &impl ConnectionTrait, sql: &str) -> Option<String> {
    first_value(conn, sql).await
}

/// The data of a query `token` sends to `app`, which must answer 200 with
/// no errors.
pub async fn ok(app: &TestApp, token: &str, q: &str, vars: serde_json::Value) -> serde_json::Value {
    let (status, body) = app.graphql(Some(token), q, vars).await;
    assert_eq!(status, 200, "{q}: {body}");
    assert!(body.get("errors").is_none(), "{q}: {body}");
    body["data"].clone()
}

/// The first column of every row of `sql`, as text.
pub async fn texts(conn: &impl ConnectionTrait, sql: &str) -> Vec<String> {
    conn.query_all_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        sql,
    ))
    .await
    .expect("query")
    .iter()
    .map(|row| row.try_get_by_index::<String>(0).expect("a text column"))
    .collect()
}

/// The SQLSTATE and the constraint (if any) of a database error.
pub fn sqlstate(err: &sea_orm::DbErr) -> (Option<String>, Option<String>) {
    strata_persistence::database_error_parts(err)
}
