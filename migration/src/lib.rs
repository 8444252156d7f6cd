//! Database migrations for Strata: schemas, roles, tables and Row-Level
//! Security.
//!
//! Every migration is hand-written SQL (in `src/sql/`), reviewed like code and
//! reversible. The SQL is the single source of truth for the isolation layer
//! that lives inside PostgreSQL; it must never be generated from entities.
//! Nothing here may run from a request path: migrations run from
//! `strata migrate` or before `strata serve` starts serving.

pub use sea_orm_migration::prelude::*;

pub mod citus;

mod m20261122_000001_roles_and_helpers;
mod m20261122_000002_public_tables;
mod m20261122_000003_tenant_b_tables;
mod m20261122_000004_row_level_security;
mod m20261123_000005_api_key_org_type;
mod m20261123_000006_agent_runs;
mod m20261123_000007_run_leases;
mod m20261123_000008_inlinable_helpers;
mod m20261124_000009_administration;
mod m20261124_000010_gateway_reads_migration_status;
mod m20261124_000011_administer_reads;
mod m20261203_000012_read_only_usage;
mod m20261203_000013_reporting_views;
mod m20261203_000014_distribute;
mod m20261204_000015_run_lists;
mod m20261204_000016_list_orders;
mod m20261204_000017_client_erasure;
mod m20261204_000018_org_quota;
mod m20261204_000019_key_rotation;
mod m20261205_000020_teams;
mod m20261205_000021_key_scopes;
mod m20261205_000022_retention;
mod m20261205_000023_client_branding;
mod m20261206_000024_data_exports;

/// All migrations, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_roles_and_helpers::Migration),
            Box::new(m20261122_000002_public_tables::Migration),
            Box::new(m20261122_000003_tenant_b_tables::Migration),
            Box::new(m20261122_000004_row_level_security::Migration),
            Box::new(m20261123_000005_api_key_org_type::Migration),
            Box::new(m20261123_000006_agent_runs::Migration),
            Box::new(m20261123_000007_run_leases::Migration),
            Box::new(m20261123_000008_inlinable_helpers::Migration),
            Box::new(m20261124_000009_administration::Migration),
            Box::new(m20261124_000010_gateway_reads_migration_status::Migration),
            Box::new(m20261124_000011_administer_reads::Migration),
            Box::new(m20261203_000012_read_only_usage::Migration),
            Box::new(m20261203_000013_reporting_views::Migration),
            Box::new(m20261203_000014_distribute::Migration),
            Box::new(m20261204_000015_run_lists::Migration),
            Box::new(m20261204_000016_list_orders::Migration),
            Box::new(m20261204_000017_client_erasure::Migration),
            Box::new(m20261204_000018_org_quota::Migration),
            Box::new(m20261204_000019_key_rotation::Migration),
            Box::new(m20261205_000020_teams::Migration),
            Box::new(m20261205_000021_key_scopes::Migration),
            Box::new(m20261205_000022_retention::Migration),
            Box::new(m20261205_000023_client_branding::Migration),
            Box::new(m20261206_000024_data_exports::Migration),
        ]
    }
}

/// Declares a migration whose `up` and `down` are SQL files under `src/sql/`.
macro_rules! sql_migration {
    ($name:literal) => {
        use sea_orm_migration::prelude::*;

        #[derive(Debug)]
        pub struct Migration;

        impl MigrationName for Migration {
            fn name(&self) -> &str {
                $name
            }
        }

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::citus::run_file(
                    manager.get_connection(),
                    include_str!(concat!("sql/", $name, ".up.sql")),
                )
                .await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::citus::run_file(
                    manager.get_connection(),
                    include_str!(concat!("sql/", $name, ".down.sql")),
                )
                .await
            }
        }
    };
}
pub(crate) use sql_migration;
