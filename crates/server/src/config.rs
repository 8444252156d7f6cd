//! Runtime configuration, assembled from flags and `STRATA_*` variables by
//! [`crate::cli`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the database is.
#[derive(Clone, Debug)]
pub enum DatabaseConfig {
    /// An external server.
    Url(SecretString),
    /// A private cluster in this directory.
    Embedded(PathBuf),
}

/// JWT verification settings. At least one of `secret` and `jwks_url` is
/// needed for any token to verify.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// HS256 secret; the only key for HS256 tokens.
    pub secret: Option<SecretString>,
    /// JWKS endpoint whose RSA keys verify RS256 and P-256 keys ES256 tokens.
    pub jwks_url: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Which claims carry the organization, e-mail and name.
    pub claims: ClaimNames,
}

/// The names of the claims Strata reads beside `sub`, `exp` and
/// `email_verified`. Identity providers differ: Auth0 puts custom claims
/// under a namespace URL (`https://example.com/org_id`), Keycloak and Okta
/// under names of the operator's choosing.
#[derive(Clone, Debug)]
pub struct ClaimNames {
    /// The organization the token names (default `org_id`).
    pub org: String,
    /// The user's e-mail (default `email`).
    pub email: String,
    /// The user's display name (default `name`).
    pub name: String,
    /// The `amr` values that prove a second factor (default `mfa`, `otp`,
    /// `hwk`, `swk`, `sms`).
    pub mfa_methods: Vec<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            org: "org_id".into(),
            email: "email".into(),
            name: "name".into(),
            mfa_methods: ["mfa", "otp", "hwk", "swk", "sms"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// How agent runs execute.
#[derive(Clone, Debug, Default)]
pub struct AgentsConfig {
    /// The OpenAI-compatible provider; `None` is the offline model.
    pub llm: Option<strata_agents::OpenAiConfig>,
    /// Runs at once, overall.
    pub max_concurrent: usize,
    /// Runs at once per organization.
    pub max_per_org: usize,
    /// Monthly tokens per organization; `None` is no limit.
    pub monthly_token_quota: Option<u64>,
    /// The offline model's pause between the pieces it streams.
    pub offline_piece_delay: Duration,
    /// How often the retention sweep runs; zero never.
    pub retention_sweep_interval: Duration,
}

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The database.
    pub database: DatabaseConfig,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Token verification.
    pub jwt: JwtConfig,
    /// How long a verified user's memberships are reused before the
    /// database is asked again; zero asks on every request.
    pub auth_cache_ttl: Duration,
    /// Migrate before serving.
    pub migrate: bool,
    /// Seed demo tenants and print their tokens.
    pub demo: bool,
    /// Agent runs.
    pub agents: AgentsConfig,
    /// Maximum connections of the pool.
    pub db_max_connections: u32,
    /// Connections the pool keeps open while idle.
    pub db_min_connections: u32,
    /// GraphQL limits.
    pub limits: strata_graphql::Limits,
    /// HTTP-level limits and protocol options.
    pub http: HttpConfig,
    /// Per-tenant rate limits.
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// Redis shared by replicas (rate limits, persisted queries); `None`
    /// keeps both in memory.
    pub redis_url: Option<SecretString>,
    /// Longest a database statement of a request may run.
    pub statement_timeout: Option<Duration>,
    /// The database URL leads to a pooler in transaction mode (PgBouncer
    /// `pool_mode = transaction`): see [`strata_persistence::PoolOptions`].
    pub db_transaction_pooling: bool,
}

/// HTTP-level limits and protocol options of `/graphql`.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batched request; 0 turns batching off.
    pub max_batch: usize,
    /// Longest a request body may take to arrive (slow senders hold a
    /// connection and a task while they trickle).
    pub body_read_timeout: Duration,
    /// Longest an operation may execute.
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty sends no CORS headers, `*` allows any.
    pub cors_origins: Vec<String>,
    /// Accept automatic persisted queries.
    pub persisted_queries: bool,
    /// Run only the operations of this manifest.
    pub allow_list: Option<PathBuf>,
    /// Subscriptions one WebSocket connection may hold at once.
    pub max_subscriptions: usize,
    /// Requests of one organization executing at once (others wait); 0 is
    /// no limit.
    pub max_inflight_per_org: usize,
    /// WebSockets one API key or user may hold open at once.
    pub max_sockets_per_principal: usize,
    /// How long a WebSocket may stay open before `connection_init`.
    pub ws_init_timeout: Duration,
    /// How often an idle WebSocket is pinged (closed after two silent
    /// periods).
    pub ws_keepalive: Duration,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the client address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest answer built for one request, in bytes.
    pub max_response_bytes: usize,
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Longest requests in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// New persisted queries one API key or user may register.
    pub pq_registrations_per_principal: crate::ratelimit::Rate,
    /// New persisted queries one organization may register.
    pub pq_registrations_per_org: crate::ratelimit::Rate,
    /// A Redis of their own for persisted queries; unset: the shared one.
    pub persisted_queries_redis_url: Option<SecretString>,
    /// Organizations given series of their own in the per-tenant metrics.
    pub metrics_top_tenants: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch: 10,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            persisted_queries: true,
            allow_list: None,
            max_subscriptions: 20,
            max_inflight_per_org: 8,
            max_sockets_per_principal: 8,
            ws_init_timeout: Duration::from_secs(10),
            ws_keepalive: Duration::from_secs(20),
            trusted_proxies: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
            pq_registrations_per_principal: crate::ratelimit::Rate::per(
                100,
                Duration::from_secs(3600),
            ),
            pq_registrations_per_org: crate::ratelimit::Rate::per(1000, Duration::from_secs(3600)),
            persisted_queries_redis_url: None,
            metrics_top_tenants: DEFAULT_METRICS_TOP_TENANTS,
        }
    }
}

/// The default of [`HttpConfig::metrics_top_tenants`].
pub const DEFAULT_METRICS_TOP_TENANTS: usize = 20;

/// The default of [`HttpConfig::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`HttpConfig::max_response_bytes`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The default of [`Config::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default of [`Config::auth_cache_ttl`].
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(5);
