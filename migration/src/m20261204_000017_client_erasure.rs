//! Erasing a client: see the SQL files. On Citus, where the tables' policies
//! were folded into permissive ones (`m20261203_000014_distribute`), the new
//! policy is created in that folded form: with the condition of the
//! restrictive `writable_delete` it joins.

use sea_orm_migration::prelude::*;

use crate::citus::{is_citus, run_file};

#[derive(Debug)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000017_client_erasure"
    }
}

/// The policy as `citus::fold_restrictive` folds it.
const FOLDED: &str = "SET LOCAL ROLE strata_owner;
DROP POLICY erase_client_rows ON public.audit_log;
CREATE POLICY erase_client_rows ON public.audit_log FOR DELETE TO app_agency
    USING ((org_id = app.current_org_id() AND client_id IS NOT NULL
            AND operation <> 'deleteClient' AND app.can_administer())
           AND (app.can_write()));
RESET ROLE;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        run_file(
            conn,
            include_str!("sql/m20261204_000017_client_erasure.up.sql"),
        )
        .await?;
        if is_citus(conn).await? {
            run_file(conn, FOLDED).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_file(
            manager.get_connection(),
            include_str!("sql/m20261204_000017_client_erasure.down.sql"),
        )
        .await
    }
}
