//! Strata's domain: identifiers, the tenant context, roles and what they
//! permit, validated value types and domain errors.
//!
//! This crate does no I/O and names no framework: no `sea_orm`,
//! `async_graphql`, `axum` or `reqwest`. Everything a request may do is
//! decided from a [`TenantContext`], which the persistence crate builds from
//! a verified credential and the database's memberships (or API keys), and
//! what each operation needs is one row of [`Action`]'s table.

pub mod action;
pub mod context;
pub mod error;
pub mod ids;
pub mod model;
pub mod values;

pub use action::{Action, Permission};
pub use context::{Actor, ClientScope, OrgType, Role, TenantContext};
pub use error::{DomainError, ValidationError};
pub use ids::{
    ApiKeyId, CampaignId, ClientId, DataExportId, InvitationId, OrgId, OutputId, PersonaId, UserId,
};
pub use values::{CampaignName, ClientName, JsonDocument, OrganizationName, PersonaName, Slug};
