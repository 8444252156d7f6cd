//! What the migrations do differently on a database with the `citus`
//! extension (a Citus coordinator). On plain PostgreSQL nothing here runs.
//!
//! Citus forwards DDL to every worker over its own connections, opened as
//! the *current* role. The migrations create objects under
//! `SET LOCAL ROLE strata_owner`, a role that cannot log in and, inside the
//! migration's own transaction, does not exist on the workers yet; so on
//! Citus a migration runs as the migrating superuser and then hands what it
//! created to `strata_owner`, which ends in the same catalog (the Citus
//! tests compare it with `schema.sql`). Runtime roles get `LOGIN`: a query
//! on a distributed table reaches the workers as the role that runs it
//! (the coordinator's `pg_hba.conf` and passwords still decide who may log
//! in from outside, see `deploy/README.md`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Roles that run queries and so must be able to log in to the workers.
const RUNTIME_ROLES: [&str; 6] = [
    "strata_owner",
    "app_sme",
    "app_agency",
    "app_auth",
    "app_maint",
    "app_lease",
];

/// Makes every worker's `app.reporting_logins` hold the coordinator's rows
/// (one statement; `success` and `result` per worker). The reporting
/// policies' helpers read the table inside shard queries, where Citus
/// allows no distributed or reference table, so each node keeps an
/// ordinary copy, written whole each time so a failed copy is mended by the
/// next.
pub const COPY_LOGINS_TO_WORKERS: &str = "SELECT r.success, r.result FROM run_command_on_workers(
   'BEGIN; DELETE FROM app.reporting_logins; '
   || coalesce((SELECT 'INSERT INTO app.reporting_logins (login, org_id, client_id, created_at, password_set_at) VALUES '
        || string_agg(format('(%L, %L, %L, %L, %L)', login, org_id, client_id, created_at, password_set_at), ', ')
        || '; ' FROM app.reporting_logins), '')
   || 'COMMIT') r";

/// Schemas whose objects Strata's migrations create.
const SCHEMAS: &str = "'app', 'tenant_b', 'reporting', 'public'";

/// Whether the database is a Citus coordinator (has the extension).
pub async fn is_citus<C: ConnectionTrait>(conn: &C) -> Result<bool, DbErr> {
    Ok(conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_catalog.pg_extension WHERE extname = 'citus'",
        ))
        .await?
        .is_some())
}

/// Runs one migration file: as written on plain PostgreSQL; on Citus as the
/// migrating role, then handing its objects to `strata_owner`.
pub(crate) async fn run_file<C: ConnectionTrait>(conn: &C, sql: &str) -> Result<(), DbErr> {
    if !is_citus(conn).await? {
        return conn.execute_unprepared(sql).await.map(|_| ());
    }
    sequential(conn).await?;
    let sql = without_owner_switch(sql);
    match statements(&sql) {
        Some(each) => {
            for statement in each {
                conn.execute_unprepared(&statement).await?;
            }
        }
        None => {
            conn.execute_unprepared(&sql).await?;
        }
    }
    hand_to_owner(conn).await
}

/// The file's statements, one by one, when it can be split safely (no
/// dollar-quoted body, so every statement ends with `;` at the end of a
/// line). Citus forwards DDL on a distributed table (`CREATE INDEX`) with
/// its message's whole text, and a worker refuses several commands in one
/// statement, so each goes alone.
fn statements(sql: &str) -> Option<Vec<String>> {
    if sql.contains('$') {
        return None;
    }
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let code = line.trim();
        if code.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if code.ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    Some(out)
}

/// Makes the rest of the migration's transaction send its multi-shard
/// commands one shard at a time. A migration writes reference tables, whose
/// copy on the coordinator Citus writes locally, and then DDL on
/// distributed tables, which Citus would run in parallel over connections:
/// a transaction may not do the second after the first ("a local execution
/// has accessed a placement").
pub async fn sequential<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    conn.execute_unprepared(
        "SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)",
    )
    .await
    .map(|_| ())
}

/// The file without its `SET LOCAL ROLE strata_owner;` and `RESET ROLE;`
/// lines (each alone on its line, as every migration writes them).
fn without_owner_switch(sql: &str) -> String {
    sql.lines()
        .filter(|l| {
            let l = l.trim();
            l != "SET LOCAL ROLE strata_owner;" && l != "RESET ROLE;"
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Gives `strata_owner` the tables, views and functions the current role
/// owns in Strata's schemas (never an extension's), and `LOGIN` to the
/// runtime roles. One statement at a time: Citus forwards each.
async fn hand_to_owner<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    let query = format!(
        "SELECT format(CASE c.relkind WHEN 'v' THEN 'ALTER VIEW %s OWNER TO strata_owner' \
                       ELSE 'ALTER TABLE %s OWNER TO strata_owner' END, c.oid::regclass) AS stmt \
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname IN ({SCHEMAS}) AND c.relkind IN ('r', 'p', 'v') \
            AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
            AND c.relname <> 'seaql_migrations' \
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
         UNION ALL \
         SELECT format('ALTER FUNCTION %s OWNER TO strata_owner', p.oid::regprocedure) \
           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname IN ({SCHEMAS}) \
            AND p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                             WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
    );
    let rows = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, query))
        .await?;
    for row in rows {
        let stmt: String = row.try_get("", "stmt")?;
        conn.execute_unprepared(&stmt).await?;
    }
    for role in RUNTIME_ROLES {
        let exists = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT 1 AS one FROM pg_catalog.pg_roles WHERE rolname = $1 AND NOT rolcanlogin",
                [role.into()],
            ))
            .await?
            .is_some();
        if exists {
            conn.execute_unprepared(&format!("ALTER ROLE {role} LOGIN"))
                .await?;
        }
        // A write to a table with a foreign key to a reference table locks
        // the reference table's shard on a worker through
        // lock_shard_resources(), which demands UPDATE, DELETE or TRUNCATE
        // on the referenced table: a privilege the runtime roles must not
        // have on organizations or users. The check is skipped for these
        // roles' sessions only, which are the ones the coordinator opens on
        // the workers (the gateway logs in as another role).
        if role_exists(conn, role).await? {
            conn.execute_unprepared(&format!(
                "ALTER ROLE {role} SET citus.skip_advisory_lock_permission_checks = on"
            ))
            .await?;
        }
    }
    Ok(())
}

async fn role_exists<C: ConnectionTrait>(conn: &C, role: &str) -> Result<bool, DbErr> {
    Ok(conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_catalog.pg_roles WHERE rolname = $1",
            [role.into()],
        ))
        .await?
        .is_some())
}

/// One row-level security policy, as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Permissive (or restrictive).
    pub permissive: bool,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub cmd: String,
    /// The roles it applies to (`public` for every role).
    pub roles: Vec<String>,
    /// `USING`, if any.
    pub using: Option<String>,
    /// `WITH CHECK`, if any.
    pub check: Option<String>,
}

const COMMANDS: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// What a lease renewal may write on one PostgreSQL: exactly the
/// transaction's `now()`.
const RENEWED_NOW: &str = "heartbeat_at = now()";
/// The same on Citus: the coordinator evaluates the `now()` a statement
/// writes, the workers' policies their own transactions' `now()`, which
/// begin a moment later; a minute either way still keeps a lease from being
/// pushed into the future or back-dated.
const RENEWED_NOW_DISTRIBUTED: &str =
    "heartbeat_at >= now() - '00:01:00'::interval AND heartbeat_at <= now() + '00:01:00'::interval";

/// `p` as it must be on Citus's shards: a check that compares a written
/// time with `now()` allows the moment between the coordinator's and the
/// worker's transaction start.
pub fn distributed(p: &Policy) -> Policy {
    let mut p = p.clone();
    p.check = p
        .check
        .map(|c| c.replace(RENEWED_NOW, RENEWED_NOW_DISTRIBUTED));
    p
}

/// One table's policies with every restrictive policy folded into the
/// permissive ones, so that the table has permissive policies only and
/// lets exactly the same rows through for every role and command.
///
/// Citus re-creates a table's policies on its shards (and on the
/// coordinator when it distributes a table) without `AS RESTRICTIVE`: a
/// restrictive policy would become a permissive one, widening what every
/// role sees instead of narrowing it. So on Citus no policy is restrictive.
/// A permissive policy `FOR ALL` is split per command; each restrictive
/// policy that covers the command is ANDed into it, guarded by a role test
/// only where the two policies' roles overlap in part (`related(a, b)`:
/// one of the two roles has the other's privileges).
pub fn fold_restrictive(policies: &[Policy], related: impl Fn(&str, &str) -> bool) -> Vec<Policy> {
    let restrictive: Vec<&Policy> = policies.iter().filter(|p| !p.permissive).collect();
    if restrictive.is_empty() {
        return policies.to_vec();
    }
    let mut out = Vec::new();
    for p in policies.iter().filter(|p| p.permissive) {
        let cmds: Vec<&str> = if p.cmd == "ALL" {
            COMMANDS.to_vec()
        } else {
            vec![p.cmd.as_str()]
        };
        let mut folded = Vec::new();
        let mut any = false;
        for cmd in cmds {
            let mut using = Vec::new();
            let mut check = Vec::new();
            let reads = matches!(cmd, "SELECT" | "UPDATE" | "DELETE");
            let writes = matches!(cmd, "INSERT" | "UPDATE");
            if reads && let Some(u) = &p.using {
                using.push(u.clone());
            }
            if writes && let Some(c) = p.check.as_ref().or(p.using.as_ref()) {
                check.push(c.clone());
            }
            for r in restrictive
                .iter()
                .filter(|r| r.cmd == "ALL" || r.cmd == cmd)
            {
                let Some(guard) = guard(&p.roles, &r.roles, &related) else {
                    continue;
                };
                any = true;
                let guarded = |e: &str| match &guard {
                    None => e.to_owned(),
                    Some(g) => format!("({e}) OR NOT ({g})"),
                };
                if reads && let Some(u) = &r.using {
                    using.push(guarded(u));
                }
                if writes && let Some(c) = r.check.as_ref().or(r.using.as_ref()) {
                    check.push(guarded(c));
                }
            }
            folded.push(Policy {
                name: if p.cmd == "ALL" {
                    format!("{}_{}", p.name, cmd.to_lowercase())
                } else {
                    p.name.clone()
                },
                permissive: true,
                cmd: cmd.to_owned(),
                roles: p.roles.clone(),
                using: and(&using),
                check: and(&check),
            });
        }
        if any {
            out.extend(folded);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Whether restrictive roles `rr` bind a caller that permissive roles `rp`
/// admit: `Some(None)` always, `Some(Some(test))` when `test` holds, `None`
/// never.
fn guard(
    rp: &[String],
    rr: &[String],
    related: &impl Fn(&str, &str) -> bool,
) -> Option<Option<String>> {
    if rr.iter().any(|r| r == "public") || rp.iter().all(|p| rr.contains(p)) {
        return Some(None);
    }
    if rp.iter().any(|p| rr.iter().any(|r| related(p, r))) {
        let test = rr
            .iter()
            .map(|r| format!("pg_has_role(CURRENT_USER, '{r}'::name, 'USAGE'::text)"))
            .collect::<Vec<_>>()
            .join(" OR ");
        return Some(Some(test));
    }
    None
}

fn and(parts: &[String]) -> Option<String> {
    match parts {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(
            many.iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// The policies of `table` (schema-qualified), from the catalog.
pub async fn policies_of<C: ConnectionTrait>(conn: &C, table: &str) -> Result<Vec<Policy>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT policyname::text AS name, permissive = 'PERMISSIVE' AS permissive, cmd, \
                    ARRAY(SELECT r::text FROM unnest(roles) r ORDER BY 1) AS roles, qual, with_check \
               FROM pg_catalog.pg_policies \
              WHERE format('%I.%I', schemaname, tablename) = $1 ORDER BY policyname",
            [table.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Policy {
                name: r.try_get("", "name")?,
                permissive: r.try_get("", "permissive")?,
                cmd: r.try_get("", "cmd")?,
                roles: r.try_get("", "roles")?,
                using: r.try_get("", "qual")?,
                check: r.try_get("", "with_check")?,
            })
        })
        .collect()
}

/// Replaces `table`'s policies with [`fold_restrictive`]'s.
pub async fn fold_table<C: ConnectionTrait>(conn: &C, table: &str) -> Result<(), DbErr> {
    let before = policies_of(conn, table).await?;
    if before.iter().all(|p| p.permissive && distributed(p) == *p) {
        return Ok(());
    }
    let mut roles: Vec<String> = before.iter().flat_map(|p| p.roles.clone()).collect();
    roles.sort();
    roles.dedup();
    let mut related_pairs = Vec::new();
    for a in &roles {
        for b in &roles {
            if a != b && a != "public" && b != "public" {
                let yes = conn
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT 1 AS one WHERE pg_catalog.pg_has_role($1, $2, 'USAGE') \
                            OR pg_catalog.pg_has_role($2, $1, 'USAGE')",
                        [a.clone().into(), b.clone().into()],
                    ))
                    .await?
                    .is_some();
                if yes {
                    related_pairs.push((a.clone(), b.clone()));
                }
            }
        }
    }
    let after: Vec<Policy> = fold_restrictive(&before, |a, b| {
        related_pairs.iter().any(|(x, y)| x == a && y == b)
    })
    .iter()
    .map(distributed)
    .collect();
    // `down` puts them back as they were (`restore_unfolded`).
    conn.execute_unprepared(UNFOLDED_TABLE).await?;
    for p in &before {
        conn.execute_unprepared(&format!(
            "INSERT INTO app.citus_unfolded_policies (table_name, statement) VALUES ({}, {})",
            literal(table),
            literal(&create_statement(p, table))
        ))
        .await?;
    }
    for p in &before {
        conn.execute_unprepared(&format!("DROP POLICY {} ON {table}", quote(&p.name)))
            .await?;
    }
    for p in &after {
        conn.execute_unprepared(&create_statement(p, table)).await?;
    }
    Ok(())
}

/// Forgets the folded policies of `tables`, which a `down` is about to
/// drop: nothing of them is to be restored when the schema is
/// undistributed ([`restore_unfolded`]).
pub async fn forget_folded<C: ConnectionTrait>(conn: &C, tables: &[&str]) -> Result<(), DbErr> {
    let names: Vec<String> = tables.iter().map(|t| literal(t)).collect();
    conn.execute_unprepared(&format!(
        "DO $d$ BEGIN
           IF to_regclass('app.citus_unfolded_policies') IS NOT NULL THEN
             DELETE FROM app.citus_unfolded_policies WHERE table_name IN ({});
           END IF;
         END $d$",
        names.join(", ")
    ))
    .await
    .map(|_| ())
}

/// Where [`fold_table`] keeps the policies it replaced, for `down`. No
/// runtime role may read it (no grant), and it holds no tenant data.
const UNFOLDED_TABLE: &str = "CREATE TABLE IF NOT EXISTS app.citus_unfolded_policies (\
    table_name text NOT NULL, statement text NOT NULL)";

/// Puts back the policies [`fold_table`] replaced, on tables that are no
/// longer distributed (where a restrictive policy works again), and drops
/// the record of them.
pub async fn restore_unfolded<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    let saved = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_catalog.pg_class WHERE oid = to_regclass('app.citus_unfolded_policies')",
        ))
        .await?
        .is_some();
    if !saved {
        return Ok(());
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name, statement FROM app.citus_unfolded_policies ORDER BY table_name, statement",
        ))
        .await?;
    let mut tables: Vec<String> = Vec::new();
    for row in &rows {
        let table: String = row.try_get("", "table_name")?;
        if !tables.contains(&table) {
            for p in policies_of(conn, &table).await? {
                conn.execute_unprepared(&format!("DROP POLICY {} ON {table}", quote(&p.name)))
                    .await?;
            }
            tables.push(table);
        }
        let statement: String = row.try_get("", "statement")?;
        conn.execute_unprepared(&statement).await?;
    }
    conn.execute_unprepared("DROP TABLE app.citus_unfolded_policies")
        .await?;
    Ok(())
}

/// The `CREATE POLICY` statement that makes `p` on `table`.
fn create_statement(p: &Policy, table: &str) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {table} AS {} FOR {} TO {}",
        quote(&p.name),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd,
        p.roles.join(", ")
    );
    if let Some(u) = &p.using {
        sql.push_str(&format!(" USING ({u})"));
    }
    if let Some(c) = &p.check {
        sql.push_str(&format!(" WITH CHECK ({c})"));
    }
    sql
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_switch_lines_go() {
        let sql = "SET LOCAL ROLE strata_owner;\nCREATE TABLE t (a int);\n  RESET ROLE;\n-- SET LOCAL ROLE strata_owner; in a comment stays\nSET LOCAL ROLE app_sme;";
        assert_eq!(
            without_owner_switch(sql),
            "CREATE TABLE t (a int);\n-- SET LOCAL ROLE strata_owner; in a comment stays\nSET LOCAL ROLE app_sme;"
        );
    }

    fn policy(
        name: &str,
        permissive: bool,
        cmd: &str,
        roles: &[&str],
        using: Option<&str>,
        check: Option<&str>,
    ) -> Policy {
        Policy {
            name: name.into(),
            permissive,
            cmd: cmd.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            using: using.map(str::to_owned),
            check: check.map(str::to_owned),
        }
    }

    #[test]
    fn restrictive_policies_fold_into_each_command_of_the_permissive_ones() {
        let before = [
            policy("org", true, "ALL", &["app_sme"], Some("org_id = o()"), None),
            policy(
                "auth",
                true,
                "SELECT",
                &["app_auth"],
                Some("user_id = u()"),
                None,
            ),
            policy(
                "writable_insert",
                false,
                "INSERT",
                &["app_agency", "app_sme"],
                None,
                Some("w()"),
            ),
            policy(
                "writable_update",
                false,
                "UPDATE",
                &["app_agency", "app_sme"],
                Some("w()"),
                Some("w()"),
            ),
            policy(
                "admin_update",
                false,
                "UPDATE",
                &["app_agency", "app_sme"],
                None,
                Some("a()"),
            ),
        ];
        let after = fold_restrictive(&before, |_, _| false);
        assert_eq!(
            after,
            vec![
                policy(
                    "org_select",
                    true,
                    "SELECT",
                    &["app_sme"],
                    Some("org_id = o()"),
                    None
                ),
                policy(
                    "org_insert",
                    true,
                    "INSERT",
                    &["app_sme"],
                    None,
                    Some("(org_id = o()) AND (w())")
                ),
                policy(
                    "org_update",
                    true,
                    "UPDATE",
                    &["app_sme"],
                    Some("(org_id = o()) AND (w())"),
                    Some("(org_id = o()) AND (w()) AND (a())")
                ),
                policy(
                    "org_delete",
                    true,
                    "DELETE",
                    &["app_sme"],
                    Some("org_id = o()"),
                    None
                ),
                // app_auth is not bound by the restrictive policies.
                policy(
                    "auth",
                    true,
                    "SELECT",
                    &["app_auth"],
                    Some("user_id = u()"),
                    None
                ),
            ]
        );
    }

    #[test]
    fn a_restrictive_policy_of_a_member_role_is_guarded_by_a_role_test() {
        let before = [
            policy(
                "org",
                true,
                "SELECT",
                &["app_reporting"],
                Some("org_id = r()"),
                None,
            ),
            policy(
                "client",
                false,
                "SELECT",
                &["app_reporting_client"],
                Some("client_id = c()"),
                None,
            ),
        ];
        let after = fold_restrictive(&before, |a, b| {
            (a, b) == ("app_reporting", "app_reporting_client")
                || (a, b) == ("app_reporting_client", "app_reporting")
        });
        assert_eq!(
            after,
            vec![policy(
                "org",
                true,
                "SELECT",
                &["app_reporting"],
                Some(
                    "(org_id = r()) AND ((client_id = c()) OR NOT (pg_has_role(CURRENT_USER, 'app_reporting_client'::name, 'USAGE'::text)))"
                ),
                None
            )]
        );
        // Unrelated roles: the restrictive policy never binds the permissive one's.
        assert_eq!(
            fold_restrictive(&before, |_, _| false),
            vec![before[0].clone()]
        );
    }
}
