//! Data exports: see the SQL files. On Citus both tables are distributed
//! by `org_id`, co-located with the other tenant tables, their restrictive
//! policies folded first as `m20261203_000014_distribute` folds the
//! others'; the chunks' foreign key to their export is added after (Citus
//! refuses one from a local table to a distributed one).

use sea_orm_migration::prelude::*;

use crate::citus::{is_citus, run_file};

#[derive(Debug)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000024_data_exports"
    }
}

/// The new tables, in foreign-key order.
const TABLES: [&str; 2] = ["public.data_exports", "public.data_export_chunks"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        run_file(
            conn,
            include_str!("sql/m20261206_000024_data_exports.up.sql"),
        )
        .await?;
        if is_citus(conn).await? {
            let anchor = crate::m20261203_000014_distribute::DISTRIBUTED_TABLES[0];
            for t in TABLES {
                crate::citus::fold_table(conn, t).await?;
                conn.execute_unprepared(&format!(
                    "SELECT create_distributed_table('{t}', 'org_id', colocate_with => '{anchor}')"
                ))
                .await?;
            }
        }
        conn.execute_unprepared(
            "ALTER TABLE public.data_export_chunks ADD CONSTRAINT data_export_chunks_export_fkey \
             FOREIGN KEY (org_id, export_id) REFERENCES public.data_exports (org_id, id) ON DELETE CASCADE",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        if is_citus(conn).await? {
            crate::citus::forget_folded(conn, &TABLES).await?;
        }
        run_file(
            conn,
            include_str!("sql/m20261206_000024_data_exports.down.sql"),
        )
        .await
    }
}
