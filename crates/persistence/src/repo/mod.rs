//! Repositories: per-aggregate modules of free async functions. Each takes
//! the tenant transaction first and returns domain types.
//!
//! Content that exists in both schemas (campaigns, runs, ...) is served by one
//! generic implementation over an [`EntitySet`]: the `public` entities for
//! SMEs, the `tenant_b` entities for agencies. The organization type in the
//! context picks the set; callers never do.

use std::str::FromStr;

use sea_orm::{DbErr, EntityTrait};

pub mod audit;
pub mod campaigns;
pub mod clients;
pub mod members;
pub mod organizations;

/// A column of `E` by its SQL name. Shared code names columns that exist on
/// both entity sets; a missing one is a programming error reported as a
/// database error, never a panic.
pub(crate) fn col<E: EntityTrait>(name: &str) -> Result<E::Column, DbErr> {
    E::Column::from_str(name).map_err(|_| {
        DbErr::Custom(format!(
            "column {name} missing on {}",
            E::default().table_name()
        ))
    })
}

/// The entities that hold one organization type's content.
pub(crate) trait EntitySet {
    /// Campaigns.
    type Campaigns: EntityTrait;
    /// Whether content rows carry a `client_id` (agencies).
    const HAS_CLIENTS: bool;
}

/// SME content, in `public`.
pub(crate) struct SmeSet;
impl EntitySet for SmeSet {
    type Campaigns = crate::entity::public::campaigns::Entity;
    const HAS_CLIENTS: bool = false;
}

/// Agency content, in `tenant_b`.
pub(crate) struct AgencySet;
impl EntitySet for AgencySet {
    type Campaigns = crate::entity::tenant_b::campaigns::Entity;
    const HAS_CLIENTS: bool = true;
}

/// Runs `$body` with `$set` bound to the entity set of `$tx`'s organization.
macro_rules! dispatch {
    ($tx:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $tx.ctx().org_type() {
            strata_domain::OrgType::Sme => $f::<$crate::repo::SmeSet>($($arg),*).await,
            strata_domain::OrgType::Agency => $f::<$crate::repo::AgencySet>($($arg),*).await,
        }
    };
}
pub(crate) use dispatch;

/// A page request: keyset pagination on `(created_at, id)`, newest first.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Return rows strictly after this key.
    pub after: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
    /// At most this many rows.
    pub limit: u64,
}

/// A page of results.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Whether more rows follow.
    pub has_next_page: bool,
}
