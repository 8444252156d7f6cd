//! The Strata gateway: configuration, authentication, HTTP routes,
//! telemetry and the `strata` command line.
//!
//! This is the only crate that knows about HTTP. It turns a credential into
//! a tenant context (verifying it here, resolving it through
//! `strata_persistence`), hands that to the GraphQL schema per request, and
//! never lets a database error or internal detail reach a response.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod documents;
pub mod exports;
pub mod graphiql;
pub mod http;
pub mod meters;
pub mod org;
pub mod parsed;
pub mod pipeline;
pub mod placement;
pub mod proxy;
pub mod quota;
pub mod ratelimit;
pub mod reporting;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod socket;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
