//! What the migrations create, as one normalized line per policy, grant and
//! role membership (`expected.txt`, beside this file), and the same lines
//! read from a live database's catalog ([`catalog_lines`]). The audit
//! reports every difference: a policy or grant added by hand, one changed,
//! one missing.
//!
//! The file is generated from a freshly migrated database and kept true by
//! a test (`UPDATE_AUDIT_EXPECTED=1` rewrites it); a migration that changes
//! policies or grants changes it too.
//!
//! Lines:
//!
//! - `table <schema.table>`: a table the migrations create;
//! - `policy <schema.table> <name> <PERMISSIVE|RESTRICTIVE> <command> to
//!   <roles> using (<expr>) check (<expr>)`;
//! - `grant <grantee> <privilege> <schema.relation>`, `column <grantee>
//!   <privilege> <schema.table.column>`, `function <grantee> EXECUTE
//!   <schema.function(args)>`, `schema <grantee> <privilege> <schema>`:
//!   privileges of the runtime roles, the gateway's login role and
//!   `PUBLIC` (a `*` after the privilege: with grant option);
//! - `member <role> of <role>`: what those roles may switch to.

use sea_orm::DbErr;

use super::{Catalog, GATEWAY, OWNER, RUNTIME_ROLES, sql_list, texts};

/// The expected lines, as generated from the migrations.
pub const EXPECTED: &str = include_str!("expected.txt");

/// The expected lines, comments and blank lines left out.
pub fn lines() -> Vec<&'static str> {
    EXPECTED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The tables the migrations create, `schema.table`.
pub fn tables() -> Vec<String> {
    lines()
        .iter()
        .filter_map(|l| l.strip_prefix("table "))
        .map(str::to_owned)
        .collect()
}

/// The header of `expected.txt`.
pub const HEADER: &str = "# What the migrations create: policies, grants and role memberships, one\n\
# per line, compared by `strata audit` with the live database.\n\
# Generated: UPDATE_AUDIT_EXPECTED=1 cargo test -p strata-tests audit_expected\n";

/// The lines of the database `cat` reads, sorted: the tables, policies,
/// grants and memberships that [`lines`] lists when the database is as the
/// migrations left it.
pub async fn catalog_lines(cat: &impl Catalog) -> Result<Vec<String>, DbErr> {
    let grantees = {
        let mut all: Vec<&str> = RUNTIME_ROLES.to_vec();
        all.push(GATEWAY);
        sql_list(&all)
    };
    let members = {
        let mut all: Vec<&str> = RUNTIME_ROLES.to_vec();
        all.extend([GATEWAY, OWNER]);
        sql_list(&all)
    };
    // aclexplode's grantee 0 is PUBLIC.
    let who = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END";
    let priv_ = "a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END";
    let ours = format!("(a.grantee = 0 OR pg_get_userbyid(a.grantee) IN ({grantees}))");
    let sql = format!(
        "SELECT 'table ' || n.nspname || '.' || c.relname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b')
            AND pg_get_userbyid(c.relowner) = '{OWNER}'
         UNION ALL
         SELECT 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || permissive || ' ' || cmd
                || ' to ' || array_to_string(ARRAY(SELECT r FROM unnest(roles) r ORDER BY 1), ',')
                || ' using (' || coalesce(qual, '') || ') check (' || coalesce(with_check, '') || ')'
           FROM pg_policies WHERE schemaname IN ('public', 'tenant_b', 'app')
         UNION ALL
         SELECT 'grant ' || {who} || ' ' || {priv_} || ' ' || n.nspname || '.' || c.relname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))) a
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname IN ('public', 'tenant_b', 'app') AND {ours}
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                            AND d.objid = c.oid AND d.deptype = 'e')
         UNION ALL
         SELECT 'column ' || {who} || ' ' || {priv_} || ' ' || n.nspname || '.' || c.relname || '.' || att.attname
           FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL aclexplode(att.attacl) a
          WHERE att.attacl IS NOT NULL AND NOT att.attisdropped AND n.nspname IN ('public', 'tenant_b', 'app') AND {ours}
         UNION ALL
         SELECT 'function ' || {who} || ' ' || {priv_} || ' ' || n.nspname || '.' || p.proname
                || '(' || pg_get_function_identity_arguments(p.oid) || ')'
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
          WHERE n.nspname IN ('public', 'tenant_b', 'app') AND {ours}
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                            AND d.objid = p.oid AND d.deptype = 'e')
         UNION ALL
         SELECT 'schema ' || {who} || ' ' || {priv_} || ' ' || n.nspname
           FROM pg_namespace n
           CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
          WHERE n.nspname IN ('public', 'tenant_b', 'app') AND {ours}
         UNION ALL
         SELECT 'member ' || pg_get_userbyid(m.member) || ' of ' || pg_get_userbyid(m.roleid)
           FROM pg_auth_members m WHERE pg_get_userbyid(m.member) IN ({members})
         ORDER BY 1"
    );
    let mut lines = texts(cat, &sql).await?;
    lines.retain(|l| !l.starts_with("table ") || !l.ends_with(".seaql_migrations"));
    Ok(lines)
}

/// The file [`EXPECTED`] should hold for `lines` (from [`catalog_lines`]).
pub fn render(lines: &[String]) -> String {
    let mut out = String::from(HEADER);
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// A policy line: `policy <table> <name> <PERMISSIVE|RESTRICTIVE> <cmd> to
/// <roles> using (<expr>) check (<expr>)`, read back.
fn parse_policy(line: &str) -> Option<(String, migration::citus::Policy)> {
    let rest = line.strip_prefix("policy ")?;
    let mut words = rest.splitn(6, ' ');
    let table = words.next()?.to_owned();
    let name = words.next()?.to_owned();
    let permissive = words.next()? == "PERMISSIVE";
    let cmd = words.next()?.to_owned();
    if words.next()? != "to" {
        return None;
    }
    let tail = words.next()?;
    let (roles, exprs) = tail.split_once(" using (")?;
    let (using, check) = exprs.rsplit_once(") check (")?;
    let check = check.strip_suffix(')')?;
    let some = |e: &str| (!e.is_empty()).then(|| e.to_owned());
    Some((
        table,
        migration::citus::Policy {
            name,
            permissive,
            cmd,
            roles: roles.split(',').map(str::to_owned).collect(),
            using: some(using),
            check: some(check),
        },
    ))
}

fn policy_line(table: &str, p: &migration::citus::Policy) -> String {
    let mut roles = p.roles.clone();
    roles.sort();
    format!(
        "policy {table} {} {} {} to {} using ({}) check ({})",
        p.name,
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd,
        roles.join(","),
        p.using.as_deref().unwrap_or(""),
        p.check.as_deref().unwrap_or("")
    )
}

/// The expected lines as a Citus coordinator has them: every table's
/// restrictive policies folded into its permissive ones, as the migrations
/// do there ([`migration::citus::fold_restrictive`]).
pub fn folded_for_citus(lines: &[String], related: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut by_table: std::collections::BTreeMap<String, Vec<migration::citus::Policy>> =
        std::collections::BTreeMap::new();
    for line in lines {
        match parse_policy(line) {
            Some((table, p)) => by_table.entry(table).or_default().push(p),
            None => out.push(line.clone()),
        }
    }
    for (table, policies) in by_table {
        for p in migration::citus::fold_restrictive(&policies, &related) {
            out.push(policy_line(&table, &migration::citus::distributed(&p)));
        }
    }
    out
}

/// `line` without parentheses or spaces inside its expressions: the
/// catalog prints a folded policy's expressions with parentheses of its
/// own choosing.
pub fn without_parentheses(line: &str) -> String {
    if !line.starts_with("policy ") {
        return line.to_owned();
    }
    match line.split_once(" using ") {
        Some((head, exprs)) => {
            let exprs: String = exprs
                .chars()
                .filter(|c| !matches!(c, '(' | ')' | ' '))
                .collect();
            format!("{head} using {exprs}")
        }
        None => line.to_owned(),
    }
}
