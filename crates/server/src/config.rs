//! Runtime configuration, assembled from flags and `STRATA_*` variables by
//! [`crate::cli`].

use std::net::SocketAddr;
use std::path::PathBuf;

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

/// JWT verification settings.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// HS256 secret.
    pub secret: Option<SecretString>,
    /// JWKS endpoint for RS256/ES256.
    pub jwks_url: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
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
    /// Migrate before serving.
    pub migrate: bool,
    /// Seed demo tenants and print their tokens.
    pub demo: bool,
    /// Maximum connections of the pool.
    pub db_max_connections: u32,
    /// GraphQL limits.
    pub limits: strata_graphql::Limits,
}
