//! Persistence for Strata: SeaORM entities for the `public` (SME) and
//! `tenant_b` (agency) schemas, the tenant transaction, and repositories that
//! dispatch by organization type.
//!
//! The one rule of this crate: no statement touches tenant data outside a
//! [`TenantTx`], and a `TenantTx` can only be begun from a
//! [`context::VerifiedContext`], which only this crate builds: from what the
//! database says about a verified credential (a user's memberships, an API
//! key's row), or for an organization being created under a fresh id. A
//! [`strata_domain::TenantContext`] built elsewhere opens nothing. The
//! transaction's first statement switches to the runtime role and sets the
//! context transaction-locally; repositories still filter by the context's
//! organization explicitly. Two exceptions: [`maintenance`] reaches every
//! organization's agent runs, and only their ids, status and times, as
//! narrow roles that see no tenant content; [`reporting`], the operator's
//! command that manages reporting logins with the database URL that
//! migrates, writes their mapping and audit rows as `strata_owner` and reads
//! no tenant row; [`placement`], the operator's command that moves an
//! organization between Citus workers, reads Citus's metadata and whether
//! the organization exists. This crate knows nothing of HTTP or GraphQL.

mod array;
pub mod audit;
pub mod auth;
pub mod context;
mod db;
pub mod demo;
mod drift;
mod error;
pub mod export;
pub mod maintenance;
pub mod placement;
pub mod repo;
pub mod reporting;
pub mod retention;
mod tx;

pub mod entity;

pub use db::{Db, LoginRole, PoolOptions, PoolStatus, TenantMeter};
pub use error::{database_error_parts, map_db_err};
pub use tx::{AuthTx, TenantTx};

/// Re-exported so callers can name migration entry points without a direct
/// dependency.
pub use migration::{Migrator, MigratorTrait};
