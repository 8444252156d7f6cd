//! Teams: see the SQL files. On Citus the new `public.invitations` is read
//! before a request knows its organization (by the invited address), like
//! memberships: it becomes a reference table, its restrictive policies
//! folded first as `m20261203_000014_distribute` folds the others'.

use sea_orm_migration::prelude::*;

use crate::citus::{is_citus, run_file};

#[derive(Debug)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000020_teams"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        run_file(conn, include_str!("sql/m20261205_000020_teams.up.sql")).await?;
        if is_citus(conn).await? {
            crate::citus::fold_table(conn, "public.invitations").await?;
            conn.execute_unprepared("SELECT create_reference_table('public.invitations')")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        if is_citus(conn).await? {
            crate::citus::forget_folded(conn, &["public.invitations"]).await?;
        }
        run_file(conn, include_str!("sql/m20261205_000020_teams.down.sql")).await
    }
}
