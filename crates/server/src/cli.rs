//! The `strata` command line. Every option is also an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use strata_domain::{OrgId, UserId};
use strata_persistence::{Migrator, MigratorTrait, PoolOptions};

use crate::app::{Application, Database, random_secret, shutdown_signal};
use crate::config::{AgentsConfig, Config, DatabaseConfig, HttpConfig, JwtConfig, LogFormat};
use crate::ratelimit::{Rate, RateLimitConfig};

/// Strata: a tenant-aware GraphQL gateway.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Global {
    /// PostgreSQL URL (DATABASE_URL is read too); unset: the embedded PostgreSQL.
    #[arg(
        long,
        env = "STRATA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Where the embedded PostgreSQL keeps its cluster.
    #[arg(
        long,
        env = "STRATA_DATA_DIR",
        default_value = "./.strata",
        global = true
    )]
    data_dir: PathBuf,
    /// HS256 secret for tokens (a random one with --demo).
    #[arg(long, env = "STRATA_JWT_SECRET", global = true, hide_env_values = true)]
    jwt_secret: Option<String>,
    /// JWKS endpoint for RS256/ES256 tokens.
    #[arg(long, env = "STRATA_JWKS_URL", global = true)]
    jwks_url: Option<String>,
    /// Required token issuer (`iss`).
    #[arg(long, env = "STRATA_JWT_ISSUER", global = true)]
    jwt_issuer: Option<String>,
    /// Required token audience (`aud`).
    #[arg(long, env = "STRATA_JWT_AUDIENCE", global = true)]
    jwt_audience: Option<String>,
    /// Claim naming the organization (a namespaced URL claim works too).
    #[arg(
        long,
        env = "STRATA_JWT_ORG_CLAIM",
        default_value = "org_id",
        global = true
    )]
    jwt_org_claim: String,
    /// Claim carrying the user's e-mail.
    #[arg(
        long,
        env = "STRATA_JWT_EMAIL_CLAIM",
        default_value = "email",
        global = true
    )]
    jwt_email_claim: String,
    /// Claim carrying the user's display name.
    #[arg(
        long,
        env = "STRATA_JWT_NAME_CLAIM",
        default_value = "name",
        global = true
    )]
    jwt_name_claim: String,
    /// `amr` values that prove a second factor, comma-separated (an
    /// organization that requires MFA accepts tokens naming one of them).
    #[arg(
        long,
        env = "STRATA_JWT_MFA_AMR",
        default_value = "mfa,otp,hwk,swk,sms",
        global = true
    )]
    jwt_mfa_amr: String,
    /// Tracing filter.
    #[arg(long, env = "STRATA_LOG", default_value = "info", global = true)]
    log: String,
    /// Log format [default: pretty on a terminal, else json].
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (migrates the database first unless --no-migrate).
    Serve(ServeArgs),
    /// Run migrations.
    Migrate {
        /// What to do.
        #[arg(value_enum, default_value_t = MigrateAction::Up)]
        action: MigrateAction,
    },
    /// Check the live database's isolation layer (RLS, roles, grants,
    /// policies, keys, migrations); exit 0 when clean, 1 on findings, 2
    /// when the audit could not run.
    Audit(AuditArgs),
    /// Mint a development JWT signed with the configured HS256 secret.
    Token {
        /// The user id (uuid).
        #[arg(long, env = "STRATA_TOKEN_USER")]
        user: UserId,
        /// The organization id (uuid).
        #[arg(long, env = "STRATA_TOKEN_ORG")]
        org: OrgId,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, env = "STRATA_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// E-mail claim.
        #[arg(long, env = "STRATA_TOKEN_EMAIL")]
        email: Option<String>,
    },
    /// Export an organization's data, or one client's, as JSON Lines
    /// (docs/EXPORT.md), with the database URL.
    Export(crate::exports::ExportArgs),
    // `strata org ...` (crate::org): organization administration with the
    // database URL that migrates.
    /// Administer an organization: its reporting logins, its placement on
    /// Citus.
    Org {
        /// What to do.
        #[command(subcommand)]
        command: crate::org::OrgCommand,
    },
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// Report format.
    #[arg(long, env = "STRATA_AUDIT_FORMAT", value_enum, default_value_t = AuditFormat::Text)]
    format: AuditFormat,
    /// Also probe for leaks: canary organizations written and attacked as
    /// each runtime role inside one transaction that is rolled back.
    #[arg(long, env = "STRATA_AUDIT_PROBE")]
    probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuditFormat {
    /// One block per finding, for people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MigrateAction {
    /// Apply pending migrations.
    Up,
    /// Roll back every migration.
    Down,
    /// Show which migrations are applied.
    Status,
    /// Roll back every migration, then apply them all.
    Fresh,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to bind.
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seed demo tenants (idempotent) and print tokens for them.
    #[arg(long, env = "STRATA_DEMO")]
    demo: bool,
    /// Do not migrate before serving.
    #[arg(long, env = "STRATA_NO_MIGRATE")]
    no_migrate: bool,
    /// Maximum database connections.
    #[arg(long, env = "STRATA_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// Database connections kept open while idle (default: the pool size,
    /// all opened at start).
    #[arg(long, env = "STRATA_DB_MIN_CONNECTIONS")]
    db_min_connections: Option<u32>,
    /// The database URL leads to a pooler in transaction mode (PgBouncer
    /// pool_mode=transaction): no statement is prepared beyond the
    /// transaction that runs it.
    #[arg(long, env = "STRATA_DB_TRANSACTION_POOLING")]
    db_transaction_pooling: bool,
    /// Maximum query depth.
    #[arg(long, env = "STRATA_MAX_DEPTH", default_value_t = 12)]
    max_depth: usize,
    /// Maximum query complexity.
    #[arg(long, env = "STRATA_MAX_COMPLEXITY", default_value_t = 50_000)]
    max_complexity: usize,
    /// Maximum aliases in one document.
    #[arg(long, env = "STRATA_MAX_ALIASES", default_value_t = 50)]
    max_aliases: usize,
    /// Maximum fields an operation selects at its root.
    #[arg(long, env = "STRATA_MAX_ROOT_FIELDS", default_value_t = 30)]
    max_root_fields: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "STRATA_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most operations in one batched request (a JSON array); 0 turns
    /// batching off.
    #[arg(long, env = "STRATA_MAX_BATCH", default_value_t = 10)]
    max_batch: usize,
    /// Longest a request body may take to arrive, e.g. 10s; a slower one
    /// is refused with 408.
    #[arg(long, env = "STRATA_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    body_read_timeout: Duration,
    /// Longest an operation may execute, e.g. 30s.
    #[arg(long, env = "STRATA_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Longest one database statement of a request may run, e.g. 10s; 0
    /// keeps the database's setting.
    #[arg(long, env = "STRATA_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    statement_timeout: Duration,
    /// Turn off introspection and field suggestions.
    #[arg(long, env = "STRATA_DISABLE_INTROSPECTION")]
    disable_introspection: bool,
    /// Turn off field suggestions in validation errors only.
    #[arg(long, env = "STRATA_DISABLE_SUGGESTIONS")]
    disable_suggestions: bool,
    /// Turn off automatic persisted queries.
    #[arg(long, env = "STRATA_DISABLE_PERSISTED_QUERIES")]
    disable_persisted_queries: bool,
    /// Run only the operations registered in this JSON manifest (an object
    /// of SHA-256 to query, or {"operations": [{"id", "body"}]}).
    #[arg(long, env = "STRATA_ALLOW_LIST")]
    allow_list: Option<PathBuf>,
    /// Origins allowed to call from a browser (comma-separated; `*` for
    /// any); unset sends no CORS headers.
    #[arg(long, env = "STRATA_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Cost units per API key: N a second, or N/PERIOD (e.g. 600/min,
    /// 10/1h); an operation costs the rows it may read (at least 1, see
    /// `@cost`/`@listSize` in the schema); 0 turns this limit off.
    #[arg(long, env = "STRATA_RATE_LIMIT_PER_KEY", default_value = "500")]
    rate_limit_per_key: Rate,
    /// Cost units per user, like --rate-limit-per-key.
    #[arg(long, env = "STRATA_RATE_LIMIT_PER_USER", default_value = "500")]
    rate_limit_per_user: Rate,
    /// Cost units per organization, like --rate-limit-per-key.
    #[arg(long, env = "STRATA_RATE_LIMIT_PER_ORG", default_value = "2000")]
    rate_limit_per_org: Rate,
    /// Periods of its rate a bucket holds (seconds, for a rate per second):
    /// the burst allowed after a quiet spell.
    #[arg(long, env = "STRATA_RATE_LIMIT_BURST", default_value_t = 2)]
    rate_limit_burst: u32,
    /// Failed authentications per client address (N a second, or
    /// N/PERIOD) before the address is refused for a while; 0 turns this
    /// off.
    #[arg(long, env = "STRATA_RATE_LIMIT_AUTH_FAILURES", default_value = "10")]
    rate_limit_auth_failures: Rate,
    /// Maximum selections a document may expand to, fragments inlined.
    #[arg(long, env = "STRATA_MAX_SELECTIONS", default_value_t = 2000)]
    max_selections: usize,
    /// Subscriptions one WebSocket connection may hold at once.
    #[arg(long, env = "STRATA_MAX_SUBSCRIPTIONS", default_value_t = 20)]
    max_subscriptions: usize,
    /// WebSockets one API key or user may hold open at once (per process).
    #[arg(long, env = "STRATA_MAX_SOCKETS_PER_PRINCIPAL", default_value_t = 8)]
    max_sockets_per_principal: usize,
    /// How long a WebSocket may stay open without `connection_init`
    /// (closed with 4408), e.g. 10s.
    #[arg(long, env = "STRATA_WS_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    ws_init_timeout: Duration,
    /// How often an idle WebSocket is pinged; one silent for two periods
    /// is closed.
    #[arg(long, env = "STRATA_WS_KEEPALIVE", default_value = "20s", value_parser = humantime::parse_duration)]
    ws_keepalive: Duration,
    /// Proxies (comma-separated CIDR blocks or addresses) whose
    /// `Forwarded`/`X-Forwarded-For` headers name the client address;
    /// unset: the TCP peer is the client.
    #[arg(long, env = "STRATA_TRUSTED_PROXIES", default_value = "", value_parser = trusted_proxies)]
    trusted_proxies: TrustedProxies,
    /// Largest answer one request may produce, in bytes; larger ones are
    /// refused with QUERY_TOO_COMPLEX.
    #[arg(long, env = "STRATA_MAX_RESPONSE_BYTES", default_value_t = crate::config::DEFAULT_MAX_RESPONSE_BYTES)]
    max_response_bytes: usize,
    /// New persisted queries one API key or user may register (a rate, as
    /// for the rate limits); 0 turns this limit off.
    #[arg(
        long,
        env = "STRATA_PERSISTED_QUERY_REGISTRATIONS_PER_PRINCIPAL",
        default_value = "100/h"
    )]
    persisted_query_registrations_per_principal: Rate,
    /// New persisted queries one organization may register.
    #[arg(
        long,
        env = "STRATA_PERSISTED_QUERY_REGISTRATIONS_PER_ORG",
        default_value = "1000/h"
    )]
    persisted_query_registrations_per_org: Rate,
    /// A Redis of its own for persisted queries (give it a `maxmemory` and
    /// an LRU policy); unset: the one of --redis-url.
    #[arg(
        long,
        env = "STRATA_PERSISTED_QUERIES_REDIS_URL",
        hide_env_values = true
    )]
    persisted_queries_redis_url: Option<String>,
    /// Longest requests in flight may take to finish once SIGTERM or
    /// Ctrl-C arrived, e.g. 20s.
    #[arg(long, env = "STRATA_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Organizations with series of their own in the per-tenant metrics
    /// (the heaviest by database time); the rest are summed as `other`.
    #[arg(long, env = "STRATA_METRICS_TOP_TENANTS", default_value_t = crate::config::DEFAULT_METRICS_TOP_TENANTS)]
    metrics_top_tenants: usize,
    /// Longest a client may take to send a request's headers, e.g. 10s.
    #[arg(long, env = "STRATA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// Requests of one organization executing at once; more wait their
    /// turn, so no tenant holds every database connection [default: half
    /// the pool, at least 1].
    #[arg(long, env = "STRATA_MAX_INFLIGHT_PER_ORG")]
    max_inflight_per_org: Option<usize>,
    /// Redis shared by replicas for rate limits and persisted queries;
    /// unset keeps both in this process's memory.
    #[arg(long, env = "STRATA_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// How often organizations' agent runs older than their `retentionDays`,
    /// and expired data exports, are deleted, e.g. 1h; 0 never (replicas
    /// sweep safely side by side).
    #[arg(long, env = "STRATA_RETENTION_SWEEP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    retention_sweep_interval: Duration,
    /// How long a verified user's memberships are reused, e.g. 5s; 0 turns
    /// the cache off (a removed member is refused once this has passed).
    #[arg(long, env = "STRATA_AUTH_CACHE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    auth_cache_ttl: Duration,
    /// OpenAI-compatible API root for the agents (e.g. an Ollama or vLLM
    /// server's `/v1`); unset runs the built-in offline model.
    #[arg(long, env = "STRATA_LLM_BASE_URL")]
    llm_base_url: Option<String>,
    /// Model name sent to the provider.
    #[arg(long, env = "STRATA_LLM_MODEL", default_value = "gpt-4o-mini")]
    llm_model: String,
    /// API key for the provider (never logged).
    #[arg(long, env = "STRATA_LLM_API_KEY", hide_env_values = true, value_parser = secret)]
    llm_api_key: Option<SecretString>,
    /// Longest wait for the provider to start answering, per attempt.
    #[arg(long, env = "STRATA_LLM_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    llm_timeout: Duration,
    /// Longest silence in a streaming answer.
    #[arg(long, env = "STRATA_LLM_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    llm_stall_timeout: Duration,
    /// Agent runs executing at once, overall.
    #[arg(long, env = "STRATA_AGENT_CONCURRENCY", default_value_t = 4)]
    agent_concurrency: usize,
    /// Agent runs executing at once per organization.
    #[arg(long, env = "STRATA_AGENT_CONCURRENCY_PER_ORG", default_value_t = 2)]
    agent_concurrency_per_org: usize,
    /// Tokens an organization's agent runs may use per calendar month; 0 is
    /// no limit.
    #[arg(long, env = "STRATA_AGENT_MONTHLY_TOKEN_QUOTA", default_value_t = 0)]
    agent_monthly_token_quota: u64,
}

impl Global {
    fn database(&self) -> DatabaseConfig {
        let url = self
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|u| !u.trim().is_empty());
        match url {
            Some(u) => DatabaseConfig::Url(SecretString::from(u)),
            None => DatabaseConfig::Embedded(self.data_dir.clone()),
        }
    }

    fn jwt(&self, secret: Option<SecretString>) -> JwtConfig {
        JwtConfig {
            secret,
            jwks_url: self.jwks_url(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            claims: crate::config::ClaimNames {
                org: self.jwt_org_claim.clone(),
                email: self.jwt_email_claim.clone(),
                name: self.jwt_name_claim.clone(),
                mfa_methods: self
                    .jwt_mfa_amr
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect(),
            },
        }
    }

    fn jwks_url(&self) -> Option<String> {
        self.jwks_url.clone().filter(|u| !u.trim().is_empty())
    }

    fn secret(&self) -> Option<SecretString> {
        self.jwt_secret
            .clone()
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
    }
}

/// Runs the parsed command line; the exit status it returns is 0 unless a
/// command says otherwise (`audit`).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let format = cli
        .global
        .log_format
        .unwrap_or_else(crate::telemetry::default_format);
    let telemetry = crate::telemetry::init(&cli.global.log, format);
    let status = match cli.command {
        Command::Serve(args) => serve(&cli.global, args).await.map(|()| 0),
        Command::Migrate { action } => migrate(&cli.global, action).await.map(|()| 0),
        Command::Audit(args) => Ok(audit(&cli.global, &args).await),
        Command::Export(args) => crate::exports::run_cli(&cli.global.database(), args)
            .await
            .map(|()| 0),
        Command::Org { command } => crate::org::run(&cli.global.database(), command)
            .await
            .map(|()| 0),
        Command::Token {
            user,
            org,
            ttl,
            email,
        } => {
            let secret = cli
                .global
                .secret()
                .context("STRATA_JWT_SECRET (or --jwt-secret) is required to mint a token")?;
            check_secret(Some(&secret))?;
            let token = crate::auth::mint(
                &secret,
                user,
                Some(org),
                email.as_deref(),
                ttl,
                cli.global.jwt_issuer.as_deref(),
                cli.global.jwt_audience.as_deref(),
            )?;
            println!("{token}");
            Ok(0)
        }
    };
    if telemetry.exporting() {
        // Flushing waits for the exporter's task: off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    status
}

/// Runs `strata audit`, prints its report and returns its exit status.
async fn audit(global: &Global, args: &AuditArgs) -> u8 {
    let report = async {
        let database = Database::open(
            &global.database(),
            &PoolOptions {
                max_connections: 2,
                ..PoolOptions::default()
            },
        )
        .await?;
        let report = strata_persistence::audit::run(&database.db, args.probe).await;
        database.close().await;
        report.map_err(|e| anyhow::anyhow!("{e}"))
    }
    .await;
    match report {
        Ok(report) => {
            match args.format {
                AuditFormat::Text => print!("{}", crate::audit::text(&report)),
                AuditFormat::Json => println!("{}", crate::audit::json(&report)),
            }
            crate::audit::exit_status(&report)
        }
        Err(e) => {
            if args.format == AuditFormat::Json {
                println!("{}", crate::audit::json_error(&format!("{e:#}")));
            }
            eprintln!("strata: the audit could not run: {e:#}");
            crate::audit::COULD_NOT_RUN
        }
    }
}

/// The parsed `--trusted-proxies`.
#[derive(Clone, Debug)]
struct TrustedProxies(Vec<ipnet::IpNet>);

fn trusted_proxies(s: &str) -> Result<TrustedProxies, String> {
    crate::proxy::parse_trusted(s).map(TrustedProxies)
}

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 asks of an
/// HS256 key.
const MIN_SECRET_BYTES: usize = 32;

fn check_secret(secret: Option<&SecretString>) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    if let Some(s) = secret
        && s.expose_secret().len() < MIN_SECRET_BYTES
    {
        anyhow::bail!(
            "STRATA_JWT_SECRET is {} bytes long; an HS256 secret needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -base64 48`)",
            s.expose_secret().len()
        );
    }
    Ok(())
}

/// Connections the pool keeps open: as asked, else the whole pool; never
/// more than the pool.
fn min_connections(asked: Option<u32>, max: u32) -> u32 {
    let max = max.max(1);
    asked.unwrap_or(max).min(max)
}

async fn serve(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let secret = match (global.secret(), args.demo) {
        (Some(s), _) => Some(s),
        (None, true) => Some(random_secret()),
        (None, false) if global.jwks_url().is_some() => None,
        (None, false) => anyhow::bail!(
            "STRATA_JWT_SECRET is required (or STRATA_JWKS_URL); for a local try-out use --demo, which makes a random one"
        ),
    };
    check_secret(secret.as_ref())?;
    if global.jwks_url().is_some() && (global.jwt_issuer.is_none() || global.jwt_audience.is_none())
    {
        tracing::warn!(
            "JWKS is configured without --jwt-issuer or --jwt-audience: any token signed by that key set is accepted, whichever application it was issued for"
        );
    }
    let config = Config {
        database: global.database(),
        listen: args.listen,
        jwt: global.jwt(secret.clone()),
        auth_cache_ttl: args.auth_cache_ttl,
        agents: AgentsConfig {
            llm: args
                .llm_base_url
                .map(|base_url| strata_agents::OpenAiConfig {
                    base_url,
                    model: args.llm_model,
                    api_key: args.llm_api_key,
                    request_timeout: args.llm_timeout,
                    stall_timeout: args.llm_stall_timeout,
                    ..strata_agents::OpenAiConfig::default()
                }),
            max_concurrent: args.agent_concurrency.max(1),
            max_per_org: args.agent_concurrency_per_org.max(1),
            monthly_token_quota: (args.agent_monthly_token_quota > 0)
                .then_some(args.agent_monthly_token_quota),
            offline_piece_delay: strata_agents::OfflineProvider::DEFAULT_PIECE_DELAY,
            retention_sweep_interval: args.retention_sweep_interval,
        },
        migrate: !args.no_migrate,
        demo: args.demo,
        db_max_connections: args.db_max_connections.max(1),
        db_min_connections: min_connections(args.db_min_connections, args.db_max_connections),
        limits: strata_graphql::Limits {
            max_depth: args.max_depth,
            max_complexity: args.max_complexity,
            max_aliases: args.max_aliases,
            max_root_fields: args.max_root_fields,
            max_selections: args.max_selections.max(1),
            introspection: !args.disable_introspection,
            suggestions: !(args.disable_introspection || args.disable_suggestions),
            ..strata_graphql::Limits::default()
        },
        http: HttpConfig {
            max_body_bytes: args.max_body_bytes.max(1024),
            max_batch: args.max_batch,
            body_read_timeout: args.body_read_timeout.max(Duration::from_millis(100)),
            request_timeout: args.request_timeout.max(Duration::from_millis(10)),
            cors_origins: args
                .cors_origins
                .into_iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            persisted_queries: !args.disable_persisted_queries,
            allow_list: args.allow_list,
            max_subscriptions: args.max_subscriptions.max(1),
            max_sockets_per_principal: args.max_sockets_per_principal.max(1),
            ws_init_timeout: args.ws_init_timeout.max(Duration::from_millis(100)),
            ws_keepalive: args.ws_keepalive.max(Duration::from_millis(100)),
            trusted_proxies: args.trusted_proxies.0,
            max_response_bytes: args.max_response_bytes.max(1024),
            header_read_timeout: args.header_read_timeout.max(Duration::from_millis(100)),
            shutdown_grace: args.shutdown_grace,
            metrics_top_tenants: args.metrics_top_tenants,
            pq_registrations_per_principal: args.persisted_query_registrations_per_principal,
            pq_registrations_per_org: args.persisted_query_registrations_per_org,
            persisted_queries_redis_url: args
                .persisted_queries_redis_url
                .filter(|u| !u.trim().is_empty())
                .map(SecretString::from),
            max_inflight_per_org: args.max_inflight_per_org.unwrap_or_else(|| {
                usize::try_from(args.db_max_connections / 2)
                    .unwrap_or(1)
                    .max(1)
            }),
        },
        rate_limits: RateLimitConfig {
            per_key: args.rate_limit_per_key,
            per_user: args.rate_limit_per_user,
            per_org: args.rate_limit_per_org,
            burst: args.rate_limit_burst.max(1),
            auth_failures_per_ip: args.rate_limit_auth_failures,
        },
        redis_url: args
            .redis_url
            .filter(|u| !u.trim().is_empty())
            .map(SecretString::from),
        statement_timeout: (!args.statement_timeout.is_zero()).then_some(args.statement_timeout),
        db_transaction_pooling: args.db_transaction_pooling,
    };
    let app = Application::build(config).await?;
    let base = format!("http://{}:{}", args.listen.ip(), app.port());
    if args.demo {
        print_demo_tokens(&app, &base);
    }
    tracing::info!(address = %base, "strata is serving: GraphiQL at /, GraphQL at /graphql");
    app.run_until_stopped(shutdown_signal()).await
}

fn print_demo_tokens(app: &Application, base: &str) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "\nStrata demo tenants (tokens valid for 24 hours)\n");
    for (u, token) in app.demo_tokens() {
        let _ = writeln!(
            out,
            "{:<28} {}\n  Authorization: Bearer {token}\n",
            u.label, u.email
        );
    }
    let _ = writeln!(
        out,
        "GraphiQL: {base}/  (signed in as the first of them; pick another at the top)\n"
    );
    print!("{out}");
}

async fn migrate(global: &Global, action: MigrateAction) -> anyhow::Result<()> {
    let database = Database::open(&global.database(), &PoolOptions::default()).await?;
    // The migrator needs the login role's own connection (it creates and
    // alters the schema); it runs no request and touches no tenant's rows.
    let db = database.db.raw();
    let result = match action {
        MigrateAction::Up => Migrator::up(db, None).await,
        MigrateAction::Down => Migrator::down(db, None).await,
        MigrateAction::Fresh => Migrator::refresh(db).await,
        MigrateAction::Status => match Migrator::get_migration_with_status(db).await {
            Ok(list) => {
                for m in list {
                    println!("{:<48} {}", m.name(), m.status());
                }
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    database.close().await;
    result.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
}

/// A secret flag or variable: kept as a [`SecretString`], whose `Debug`
/// prints no value.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::{Cli, Command, min_connections};

    #[test]
    fn the_provider_key_is_read_from_its_flag_and_never_printed() {
        let cli = Cli::try_parse_from([
            "strata",
            "serve",
            "--llm-base-url",
            "http://127.0.0.1:9/v1",
            "--llm-api-key",
            "sk-never-printed-0123",
        ])
        .unwrap();
        let printed = format!("{cli:?}");
        assert!(!printed.contains("sk-never-printed"), "{printed}");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(
            args.llm_api_key.as_ref().map(|k| k.expose_secret()),
            Some("sk-never-printed-0123")
        );
    }

    #[test]
    fn the_pool_is_kept_full_unless_asked_otherwise() {
        assert_eq!(min_connections(None, 16), 16);
        assert_eq!(min_connections(Some(4), 16), 4);
        assert_eq!(min_connections(Some(0), 16), 0);
        assert_eq!(min_connections(Some(40), 16), 16, "capped by the pool");
        assert_eq!(min_connections(None, 0), 1, "the pool has at least one");
    }
}
