//! On a Citus coordinator, distributes the schema: what a request reads
//! before it knows its organization (organizations, users, memberships, API
//! keys, reporting logins) becomes a reference table, present on every
//! node; every tenant table of both schemas is distributed by `org_id`, all
//! co-located, so one organization's rows of every table sit on one node and
//! a single-tenant request is a router query. On plain PostgreSQL it does
//! nothing.
//!
//! Citus copies a table's policies to its shards without `AS RESTRICTIVE`,
//! so the restrictive policies are first folded into the permissive ones
//! (`citus::fold_restrictive`): the same rows pass, with permissive
//! policies only. `down` puts the original policies back once the tables
//! are local again.
//!
//! Citus allows no foreign key from a reference table to a distributed one,
//! so `api_keys_client_fkey` is dropped here and restored by `down`; the
//! repository checks the client id in the same transaction.
//! `app.reporting_logins` stays an ordinary table, copied to every worker
//! (the reporting policies read it inside shard queries, where Citus allows
//! no distributed or reference table), without its foreign keys, which
//! `strata org reporting-login` checks instead (see `deploy/README.md`).

use sea_orm_migration::prelude::*;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::citus::is_citus;

#[derive(Debug)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000014_distribute"
    }
}

/// Reference tables, in foreign-key order.
pub const REFERENCE_TABLES: [&str; 4] = [
    "public.organizations",
    "public.users",
    "public.memberships",
    "public.api_keys",
];

/// Tables distributed by `org_id`, in foreign-key order; the first anchors
/// the co-location group.
pub const DISTRIBUTED_TABLES: [&str; 11] = [
    "tenant_b.workspace_entities",
    "public.campaigns",
    "public.brand_guidelines",
    "public.personas",
    "public.agent_outputs",
    "public.audit_log",
    "public.token_usage",
    "tenant_b.client_assignments",
    "tenant_b.entity_data",
    "tenant_b.campaigns",
    "tenant_b.outputs",
];

const UP: &str = r#"
ALTER TABLE public.api_keys DROP CONSTRAINT api_keys_client_fkey;
ALTER TABLE app.reporting_logins DROP CONSTRAINT reporting_logins_org_id_client_id_fkey;
ALTER TABLE app.reporting_logins DROP CONSTRAINT reporting_logins_org_id_fkey;
"#;

/// `app.reporting_logins` on every worker: an ordinary table, as on the
/// coordinator, which `strata org reporting-login` keeps equal to the
/// coordinator's. The reporting policies' helpers read it inside shard
/// queries, where Citus allows no distributed (or reference) table.
const WORKER_LOGINS: &str = "SELECT run_command_on_workers($w$
CREATE TABLE IF NOT EXISTS app.reporting_logins (
    login            name PRIMARY KEY,
    org_id           uuid NOT NULL,
    client_id        uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    password_set_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reporting_logins_org_client_key UNIQUE NULLS NOT DISTINCT (org_id, client_id)
);
ALTER TABLE app.reporting_logins OWNER TO strata_owner;
ALTER TABLE app.reporting_logins ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.reporting_logins FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_login ON app.reporting_logins;
CREATE POLICY own_login ON app.reporting_logins FOR SELECT TO app_reporting
    USING (login = session_user);
GRANT SELECT (login, org_id, client_id) ON app.reporting_logins TO app_reporting;
$w$)";

const DOWN: &str = r#"
SELECT run_command_on_workers('DROP TABLE IF EXISTS app.reporting_logins');
ALTER TABLE app.reporting_logins
    ADD CONSTRAINT reporting_logins_org_id_fkey FOREIGN KEY (org_id)
    REFERENCES public.organizations (id) ON DELETE CASCADE;
ALTER TABLE public.api_keys
    ADD CONSTRAINT api_keys_client_fkey FOREIGN KEY (org_id, client_id)
    REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE;
ALTER TABLE app.reporting_logins
    ADD CONSTRAINT reporting_logins_org_id_client_id_fkey FOREIGN KEY (org_id, client_id)
    REFERENCES tenant_b.workspace_entities (org_id, id) ON DELETE CASCADE;
"#;

/// The foreign keys whose referenced table is one of
/// [`DISTRIBUTED_TABLES`]: (table, quoted name, definition).
async fn foreign_keys_between_tenant_tables<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, String, String)>, DbErr> {
    let list = DISTRIBUTED_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT format('%I.%I', n.nspname, c.relname) AS tbl, quote_ident(k.conname) AS name, \
                        pg_get_constraintdef(k.oid) AS def \
                   FROM pg_constraint k \
                   JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                   JOIN pg_class f ON f.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace \
                  WHERE k.contype = 'f' AND format('%I.%I', fn.nspname, f.relname) IN ({list}) \
                  ORDER BY 1, 2"
            ),
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "tbl")?,
                r.try_get("", "name")?,
                r.try_get("", "def")?,
            ))
        })
        .collect()
}

/// The grants on the `reporting` views, as statements. Citus re-creates
/// the views that depend on a table it distributes or undistributes, and a
/// re-created view has only its owner's privileges: these statements give
/// the rest back.
async fn view_grants<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT format('GRANT %s ON %s TO %s', a.privilege_type, c.oid::regclass, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) AS stmt \
               FROM pg_class c, aclexplode(c.relacl) a \
              WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v' AND a.grantee <> c.relowner \
             UNION ALL \
             SELECT format('GRANT %s (%I) ON %s TO %s', a.privilege_type, t.attname, c.oid::regclass, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) \
               FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0, aclexplode(t.attacl) a \
              WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v' AND a.grantee <> c.relowner \
              ORDER BY 1",
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "stmt")).collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        if !is_citus(conn).await? {
            return Ok(());
        }
        crate::citus::sequential(conn).await?;
        conn.execute_unprepared(UP).await?;
        let grants = view_grants(conn).await?;
        // A local table may not reference a distributed one, nor the other
        // way round: the foreign keys between tenant tables go while the
        // tables are distributed one by one, and come back unchanged.
        let keys = foreign_keys_between_tenant_tables(conn).await?;
        for (table, name, _) in &keys {
            conn.execute_unprepared(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                .await?;
        }
        // Citus drops `AS RESTRICTIVE` when it copies a policy to a shard:
        // no policy may be restrictive (see `citus::fold_restrictive`).
        for t in REFERENCE_TABLES.iter().chain(DISTRIBUTED_TABLES.iter()) {
            crate::citus::fold_table(conn, t).await?;
        }
        for t in REFERENCE_TABLES {
            conn.execute_unprepared(&format!("SELECT create_reference_table('{t}')"))
                .await?;
        }
        let anchor = DISTRIBUTED_TABLES[0];
        for t in DISTRIBUTED_TABLES {
            let colocate = if t == anchor { "none" } else { anchor };
            conn.execute_unprepared(&format!(
                "SELECT create_distributed_table('{t}', 'org_id', colocate_with => '{colocate}')"
            ))
            .await?;
        }
        for (table, name, def) in &keys {
            conn.execute_unprepared(&format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"))
                .await?;
        }
        for grant in &grants {
            conn.execute_unprepared(grant).await?;
        }
        conn.execute_unprepared(WORKER_LOGINS).await?;
        conn.execute_unprepared(crate::citus::COPY_LOGINS_TO_WORKERS)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        if !is_citus(conn).await? {
            return Ok(());
        }
        crate::citus::sequential(conn).await?;
        let grants = view_grants(conn).await?;
        // Every table is linked to organizations by a foreign key: one call
        // turns them all back into local tables.
        conn.execute_unprepared(
            "SELECT undistribute_table('public.organizations', cascade_via_foreign_keys => true)",
        )
        .await?;
        for grant in &grants {
            conn.execute_unprepared(grant).await?;
        }
        crate::citus::restore_unfolded(conn).await?;
        conn.execute_unprepared(DOWN).await?;
        Ok(())
    }
}
