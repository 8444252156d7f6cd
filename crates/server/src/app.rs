//! The application: database (external or embedded), migrations, demo data,
//! the listener and graceful shutdown.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};
use strata_persistence::demo::DemoUser;
use strata_persistence::{Db, PoolOptions};
use tokio::net::TcpListener;

use crate::auth::{UserCache, Verifier};
use crate::config::{Config, DatabaseConfig};
use crate::routes::{AppState, router};

/// Query text whose syntax trees are kept (see [`crate::parsed`]).
const PARSED_TEXT_BYTES: u64 = 4 * 1024 * 1024;

/// A database ready for use, and the embedded cluster behind it, if any.
pub struct Database {
    /// The pool.
    pub db: Db,
    /// The private cluster, stopped by [`Database::close`].
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured database, starting the embedded cluster
    /// first when no URL is configured.
    pub async fn open(cfg: &DatabaseConfig, pool: &PoolOptions) -> anyhow::Result<Self> {
        let (url, embedded) = match cfg {
            DatabaseConfig::Url(url) => (url.clone(), None),
            DatabaseConfig::Embedded(dir) => {
                let pg = EmbeddedPostgres::start(&EmbeddedOptions {
                    data_dir: dir.clone(),
                    remove_on_exit: false,
                    database: "strata".into(),
                    ..Default::default()
                })
                .await?;
                tracing::info!(data_dir = %pg.data_dir().display(), "embedded postgresql started");
                (pg.url().clone(), Some(pg))
            }
        };
        let db = Db::connect(&url, pool)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
        Ok(Self { db, embedded })
    }

    /// Closes the pool and stops the embedded cluster.
    pub async fn close(self) {
        self.db.close().await;
        if let Some(pg) = self.embedded {
            pg.stop().await;
        }
    }
}

fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            crate::meters::describe();
            // Latencies as histograms (summaries cannot be aggregated
            // across replicas).
            let builder = PrometheusBuilder::new();
            let recorder = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Only the first application of a process installs the global
            // recorder; later ones (tests) share it.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A built gateway, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    database: Database,
    demo_users: Vec<DemoUser>,
    demo_tokens: Vec<(DemoUser, String)>,
}

impl Application {
    /// Binds the listener, opens (and migrates) the database, seeds demo data
    /// when asked. Every failure is one line of context.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Bad token settings are found before anything starts.
        let verifier = Verifier::new(&config.jwt)?.remember_for(config.auth_cache_ttl);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let pool = PoolOptions {
            max_connections: config.db_max_connections,
            min_connections: config.db_min_connections,
            statement_timeout: config.statement_timeout,
            transaction_pooling: config.db_transaction_pooling,
            ..PoolOptions::default()
        };
        let mut database = Database::open(&config.database, &pool).await?;
        let tenants = Arc::new(crate::meters::TopTenants::new(
            config.http.metrics_top_tenants,
        ));
        {
            let tenants = tenants.clone();
            database.db =
                database
                    .db
                    .clone()
                    .with_tenant_meter(strata_persistence::TenantMeter::new(move |org, time| {
                        tenants.db_time(org, time)
                    }));
        }
        if config.migrate {
            // Only a schema that is behind needs a role that may change it;
            // an up-to-date one lets the production login role (which may
            // read the migration table and nothing else) start as well.
            let pending = database.db.pending_migrations().await;
            if !matches!(&pending, Ok(p) if p.is_empty()) {
                database.db.migrate().await.map_err(|e| {
                    let unread = match &pending {
                        Err(read) => format!("; the migration table could not be read: {read}"),
                        Ok(_) => String::new(),
                    };
                    anyhow::anyhow!(
                        "migrations failed: {e}{unread} (run `strata migrate up` as a role that owns the schema, or start with --no-migrate)"
                    )
                })?;
            }
        }
        match database.db.login_role().await {
            Ok(role) if role.is_privileged() => tracing::warn!(
                db.role = %role.name,
                "the database login role is a superuser or bypasses RLS; every request still switches to a runtime role, but production should log in as a role without privileges of its own (see strata_gateway)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the login role's privileges"),
        }
        {
            // The audit's catalog checks, in the background so that start-up
            // does not wait for them; each finding is logged as a warning.
            let db = database.db.clone();
            tokio::spawn(async move {
                match strata_persistence::audit::lint(&db).await {
                    Ok(report) => crate::audit::log(&report),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot audit the database's isolation layer")
                    }
                }
            });
        }
        let demo_users = if config.demo {
            strata_persistence::demo::seed(&database.db)
                .await
                .map_err(|e| anyhow::anyhow!("seeding demo data failed: {e}"))?
        } else {
            Vec::new()
        };
        let provider: strata_agents::SharedProvider = match config.agents.llm.clone() {
            Some(llm) => {
                std::sync::Arc::new(strata_agents::OpenAiProvider::new(llm).map_err(|e| {
                    anyhow::anyhow!("the agents' model provider is misconfigured: {e}")
                })?)
            }
            None => std::sync::Arc::new(strata_agents::OfflineProvider::with_piece_delay(
                config.agents.offline_piece_delay,
            )),
        };
        tracing::info!(provider = provider.name(), "agent provider ready");
        let runner = strata_runner::Runner::new(
            database.db.clone(),
            strata_runner::RunnerConfig {
                provider,
                model: None,
                max_concurrent: config.agents.max_concurrent.max(1),
                max_per_org: config.agents.max_per_org.max(1),
                monthly_token_quota: config.agents.monthly_token_quota,
            },
        );
        match runner.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "marked runs whose gateway stopped as failed"),
            Err(e) => tracing::warn!(error = %e, "cannot check for runs whose gateway stopped"),
        }
        verifier.prefetch().await;
        let redis = match &config.redis_url {
            Some(url) => Some(crate::ratelimit::connect_redis(url).await?),
            None => None,
        };
        let documents_redis = match &config.http.persisted_queries_redis_url {
            Some(url) => Some(crate::ratelimit::connect_redis(url).await?),
            None => redis.clone(),
        };
        let documents = crate::documents::Documents::new(
            config.http.persisted_queries,
            config.http.allow_list.as_deref(),
            documents_redis.clone(),
        )?;
        let registrations = crate::ratelimit::RateLimiter::in_space(
            crate::ratelimit::RateLimitConfig {
                per_key: config.http.pq_registrations_per_principal,
                per_user: config.http.pq_registrations_per_principal,
                per_org: config.http.pq_registrations_per_org,
                burst: 1,
                ..crate::ratelimit::RateLimitConfig::off()
            },
            documents_redis,
            "pq",
        );
        let sessions = crate::sessions::SessionRevocations::new(redis.clone());
        let limiter = crate::ratelimit::RateLimiter::new(config.rate_limits.clone(), redis);
        {
            // In-memory buckets of callers who went quiet are dropped now
            // and then. With Redis too: its own expire, but the in-memory
            // ones that decide while it is unreachable fill during an
            // outage.
            let idle = limiter.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    every.tick().await;
                    idle.forget_idle();
                }
            });
        }
        let schema = strata_graphql::schema_with_runner(&config.limits, runner.clone());
        let cost = strata_graphql::cost::CostModel::from_sdl(&schema.sdl())
            .map_err(|e| anyhow::anyhow!("the schema's cost model cannot be read: {e}"))?;
        let demo_tokens = demo_tokens(&config, &demo_users)?;
        let demo = (!demo_tokens.is_empty()).then(|| {
            let users: Vec<serde_json::Value> = demo_tokens
                .iter()
                .map(|(u, token)| {
                    serde_json::json!({ "label": u.label, "email": u.email, "token": token })
                })
                .collect();
            Arc::from(serde_json::Value::from(users).to_string())
        });
        if !config.agents.retention_sweep_interval.is_zero() {
            spawn_retention_sweep(database.db.clone(), config.agents.retention_sweep_interval);
        }
        let users = UserCache::new(config.auth_cache_ttl);
        let revocations: Arc<crate::socket::Revocations> = Arc::default();
        if let Some(url) = &config.redis_url {
            use secrecy::ExposeSecret as _;
            let client = redis::Client::open(url.expose_secret())
                .map_err(|e| anyhow::anyhow!("STRATA_REDIS_URL is not a valid Redis URL: {e}"))?;
            let (users, revocations) = (users.clone(), revocations.clone());
            crate::sessions::listen(client, move |what| {
                let (users, revocations) = (users.clone(), revocations.clone());
                async move {
                    users.forget(what).await;
                    revocations.bump();
                }
            });
        }
        let state = AppState {
            demo,
            cost: Arc::new(cost),
            gates: crate::ratelimit::OrgGates::new(config.http.max_inflight_per_org),
            limiter,
            documents: Arc::new(documents),
            parsed: Arc::new(crate::parsed::ParsedDocuments::new(PARSED_TEXT_BYTES)),
            http: Arc::new(config.http.clone()),
            db: database.db.clone(),
            schema,
            introspection_schema: strata_graphql::introspection_schema(&config.limits),
            socket_schema: strata_graphql::socket_schema_with_runner(
                &config.limits,
                runner.clone(),
            ),
            limits: Arc::new(config.limits.clone()),
            runner,
            verifier: Arc::new(verifier),
            users: users.clone(),
            metrics: metrics_handle(),
            registrations,
            socket_counts: Arc::default(),
            revocations: revocations.clone(),
            sessions,
            auth_cache_ttl: config.auth_cache_ttl,
            tenants,
            drain: crate::serve::Drain::default(),
            exports: crate::exports::Exports::new(
                database.db.clone(),
                crate::exports::Exports::at_once_for(config.db_max_connections),
            ),
        };
        Ok(Self {
            listener,
            state,
            database,
            demo_users,
            demo_tokens,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The demo users seeded by `--demo`.
    pub fn demo_users(&self) -> &[DemoUser] {
        &self.demo_users
    }

    /// The demo users with a token each (valid a day), with `--demo` and an
    /// HS256 secret.
    pub fn demo_tokens(&self) -> &[(DemoUser, String)] {
        &self.demo_tokens
    }

    /// The pool (for tests and tooling).
    pub fn db(&self) -> &Db {
        &self.database.db
    }

    /// Serves until `shutdown` resolves, then drains connections, closes the
    /// pool and stops the embedded database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let opts = crate::serve::ServeOptions {
            header_read_timeout: self.state.http.header_read_timeout,
            shutdown_grace: self.state.http.shutdown_grace,
        };
        let drain = self.state.drain.clone();
        crate::serve::serve(self.listener, router(self.state), opts, shutdown, drain).await;
        self.database.close().await;
        Ok(())
    }
}

/// How long the demo users' tokens are valid.
const DEMO_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A token for each demo user, minted with the HS256 secret (none without
/// one, or without `--demo`).
fn demo_tokens(config: &Config, users: &[DemoUser]) -> anyhow::Result<Vec<(DemoUser, String)>> {
    let Some(secret) = config.jwt.secret.as_ref().filter(|_| config.demo) else {
        return Ok(Vec::new());
    };
    users
        .iter()
        .map(|u| {
            let token = crate::auth::mint(
                secret,
                u.user_id,
                Some(u.org_id),
                Some(&u.email),
                DEMO_TOKEN_TTL,
                config.jwt.issuer.as_deref(),
                config.jwt.audience.as_deref(),
            )?;
            Ok((u.clone(), token))
        })
        .collect()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// A random HS256 secret for `--demo`.
pub fn random_secret() -> SecretString {
    use rand::distr::{Alphanumeric, SampleString};
    SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 48))
}

/// Runs the retention sweep every `every` until the process ends (the
/// first a moment after start); failures are logged and the next sweep
/// tries again.
fn spawn_retention_sweep(db: strata_persistence::Db, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match strata_persistence::retention::sweep(&db).await {
                Ok(swept) => {
                    if swept.exports > 0 {
                        tracing::info!(exports = swept.exports, "expired data exports deleted");
                    }
                    for (org, runs) in &swept.organizations {
                        tracing::info!(org = %org, runs, "retention sweep deleted old runs");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the retention sweep failed"),
            }
        }
    });
}
