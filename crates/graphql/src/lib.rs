//! Strata's GraphQL API (async-graphql): types, queries, mutations, loaders
//! and limits.
//!
//! Resolvers never see a connection: they ask the per-request
//! [`RequestState`] for its tenant transaction, which exists only when the
//! credential resolved to a tenant context. GraphQL types are structs of
//! this crate, converted from domain types; database rows never leak into the
//! schema. This crate knows nothing of HTTP.

mod error;
mod loaders;
mod mutation;
mod query;
mod state;
mod types;

use async_graphql::{EmptySubscription, Schema};

pub use error::{ErrorCode, domain_error};
pub use mutation::Mutation;
pub use query::Query;
pub use state::RequestState;

/// The schema type served by the gateway.
pub type StrataSchema = Schema<Query, Mutation, EmptySubscription>;

/// Limits applied to every operation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum selection depth.
    pub max_depth: usize,
    /// Maximum complexity (each field costs 1; lists cost by their `first`).
    pub max_complexity: usize,
    /// Maximum number of directives/aliases/recursion, as async-graphql counts.
    pub max_recursive_depth: usize,
    /// Whether introspection is served.
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 5_000,
            max_recursive_depth: 32,
            introspection: true,
        }
    }
}

/// Builds the schema.
pub fn schema(limits: &Limits) -> StrataSchema {
    let mut builder = Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursive_depth);
    if !limits.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema(&Limits::default()).sdl()
}
