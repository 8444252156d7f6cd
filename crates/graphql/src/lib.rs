//! Strata's GraphQL API (async-graphql): types, queries, mutations, loaders
//! and limits.
//!
//! Resolvers never see a connection: they ask the per-request
//! [`RequestState`] for its tenant transaction, which exists only when the
//! credential resolved to a tenant context. GraphQL types are structs of
//! this crate, converted from domain types; database rows never leak into the
//! schema. This crate knows nothing of HTTP.
//!
//! Every mutation parses its input into domain types before touching the
//! database, runs inside a savepoint of the request's transaction (so a
//! failed mutation leaves nothing behind while earlier ones in the same
//! document stand), and writes its audit row there.
//!
//! The modules are layered, and none imports a module that imports it
//! back: helpers at the bottom (`error`, `args`, `lists`, `cost`, `pagination`, `savepoint`,
//! the request's `session`, `loaders` and `state`, `guard`, `limits`,
//! `leaves`, `global_id`); above them `results` (typed agent outputs) and `types`, the object types of an organization's
//! content, which refer to one another; on top one module per area
//! (`organization`, `members`, `clients`, `campaigns`, `content`, `runs`,
//! `subscription`, `audit`, `api_keys`, `exports`, and `node`, over the others'
//! types), each with its root fields, their
//! inputs and the types only it returns. This file assembles the roots.

// Helpers, importing no module above them.
mod args;
pub mod cost;
mod error;
mod global_id;
mod guard;
mod leaves;
mod limits;
mod lists;
mod loaders;
mod pagination;
mod savepoint;
mod session;
mod state;

// Object types that refer to one another.
mod results;
mod types;

// One module per area: root fields, their inputs and the types only they
// return.
mod api_keys;
mod audit;
mod brief;
mod campaigns;
mod clients;
mod content;
mod exports;
mod invitations;
mod members;
mod node;
mod organization;
mod runs;
mod subscription;

use std::sync::Arc;

use async_graphql::{MergedObject, Schema};
use strata_runner::Runner;

pub use error::{ErrorCode, domain_error};
pub use limits::{Revalidate, SocketSession, Turn, is_introspection_only, operation_type};
pub use session::{Committed, Credential};
pub use state::RequestState;
pub use subscription::Subscription;

// The parts of `Query` and `Mutation` are in the order of their fields in
// `schema.graphql`. That order lists `createOrganization`, `addMember` and
// `createClient` before the campaign mutations and the other organization,
// member and client mutations after them, so each of those three areas
// gives its first mutation a part of its own.

/// The query root: one part per area, each in its own module.
#[derive(MergedObject, Default)]
pub struct Query(
    organization::OrganizationQuery,
    clients::ClientQuery,
    campaigns::CampaignQuery,
    members::MemberQuery,
    invitations::InvitationQuery,
    content::ContentQuery,
    runs::RunQuery,
    audit::AuditQuery,
    api_keys::ApiKeyQuery,
    node::NodeQuery,
    exports::ExportQuery,
);

/// The mutation root: one part per area, each in its own module.
#[derive(MergedObject, Default)]
pub struct Mutation(
    organization::CreateOrganizationMutation,
    members::AddMemberMutation,
    clients::CreateClientMutation,
    campaigns::CampaignMutation,
    clients::ClientMutation,
    members::MemberMutation,
    invitations::InvitationMutation,
    organization::OrganizationMutation,
    content::ContentMutation,
    runs::RunMutation,
    api_keys::ApiKeyMutation,
    exports::ExportMutation,
);

/// The schema type served by the gateway.
pub type StrataSchema = Schema<Query, Mutation, Subscription>;

/// Limits applied to every operation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum selection depth.
    pub max_depth: usize,
    /// Maximum complexity: each field costs 1, a list field costs its
    /// children once per item it may return (its `first`, or the default
    /// page size).
    pub max_complexity: usize,
    /// Maximum aliases in a document.
    pub max_aliases: usize,
    /// Maximum fields an operation selects at its root.
    pub max_root_fields: usize,
    /// Maximum selections a document expands to, fragments inlined.
    pub max_selections: usize,
    /// Maximum nesting the parser follows (selections, lists, objects).
    pub max_recursive_depth: usize,
    /// Whether introspection is served.
    pub introspection: bool,
    /// Whether validation errors suggest similar field names.
    pub suggestions: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 50_000,
            max_aliases: 50,
            max_root_fields: 30,
            max_selections: 2_000,
            max_recursive_depth: 32,
            introspection: true,
            suggestions: true,
        }
    }
}

/// Builds the schema served over HTTP, with agent runs executed by
/// `runner`. Requests are checked with [`check_shape`] before they run.
pub fn schema_with_runner(limits: &Limits, runner: Arc<Runner>) -> StrataSchema {
    builder(limits).data(runner).finish()
}

/// Builds the schema served over the WebSocket: the same, with the shape
/// checks (and the subscriptions-only rule) as an extension, since
/// operations arrive there without passing the HTTP handler.
pub fn socket_schema_with_runner(limits: &Limits, runner: Arc<Runner>) -> StrataSchema {
    builder(limits)
        .extension(shape_limits(limits))
        .data(runner)
        .finish()
}

/// The depth an introspection-only query may reach: the standard
/// introspection query of graphql-js, which GraphiQL, code generators and
/// API tools send, nests type references about a dozen levels deep.
const INTROSPECTION_DEPTH: usize = 40;

/// Builds the schema that runs queries selecting only introspection fields
/// (see [`is_introspection_only`]): the same schema, with the depth and
/// complexity limits raised so that every standard tool's introspection
/// query passes. Such queries read no tenant data; the shape limits
/// ([`check_shape`]) still apply to them.
pub fn introspection_schema(limits: &Limits) -> StrataSchema {
    let raised = Limits {
        max_depth: limits.max_depth.max(INTROSPECTION_DEPTH),
        max_complexity: limits.max_complexity.max(100_000),
        ..limits.clone()
    };
    builder(&raised).finish()
}

/// Builds the schema without an agent runner (agent mutations then fail
/// with INTERNAL): for the SDL and for tests that do not run agents.
pub fn schema(limits: &Limits) -> StrataSchema {
    builder(limits).finish()
}

fn shape_limits(limits: &Limits) -> limits::ShapeLimits {
    limits::ShapeLimits {
        max_aliases: limits.max_aliases,
        max_root_fields: limits.max_root_fields,
        max_selections: limits.max_selections,
        // async-graphql counts the operation's own set too.
        max_nesting: limits.max_recursive_depth,
        max_directives: MAX_DIRECTIVES_PER_FIELD,
    }
}

/// Parses a request's document (kept in the request for execution) and
/// refuses it, with `QUERY_TOO_COMPLEX`, when it expands to too many
/// selections, or has too many aliases or root fields. Parse errors come
/// back as they are.
pub fn check_shape(
    limits: &Limits,
    request: &mut async_graphql::Request,
) -> async_graphql::ServerResult<()> {
    shape_limits(limits).check(request)
}

/// Directives one field may carry (`@include`/`@skip` need two at most).
const MAX_DIRECTIVES_PER_FIELD: usize = 4;

fn builder(limits: &Limits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursive_depth)
        .limit_directives(MAX_DIRECTIVES_PER_FIELD);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if !limits.suggestions {
        builder = builder.disable_suggestions();
    }
    builder
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema(&Limits::default()).sdl()
}
