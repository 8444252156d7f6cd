//! `strata audit`: checks a live database against what the isolation layer
//! needs (`ISOLATION.md`), from its catalog, and optionally probes it for
//! leaks between tenants with canary rows that are rolled back.
//!
//! [`lint`] reads the catalog only and changes nothing: Row-Level Security
//! enabled and forced on every table of ours, owners, the attributes,
//! memberships, ownerships and grants of the roles a request can become,
//! the login role's attributes, policies (no sub-select, no `IS NULL`
//! escape, no whole row handed to a function, none that lets every row
//! through), the context helpers being inlinable, no `SECURITY DEFINER`
//! function, views that run as their caller, keys and indexes that lead
//! with `org_id`, the migration table against this binary's migrations,
//! and every policy, grant and role membership against the set the
//! migrations create ([`expected`]). [`probe()`] goes further: see
//! [`probe`](mod@probe).
//!
//! Each problem is a [`Finding`] with a stable id (`rls.not_forced`,
//! `policy.unexpected`, ...), a [`Severity`], the object and a statement
//! that fixes it. The ids are listed in `docs/OPERATIONS.md`.
pub mod expected;
pub mod probe;

use std::collections::BTreeSet;
use std::fmt;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult,
    Statement, TransactionTrait,
};

use crate::db::Db;

pub use probe::probe;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A tenant can read or change another tenant's rows, or the database
    /// no longer enforces isolation at all for some role or table.
    Critical,
    /// Isolation holds only because of another layer, or an operator's
    /// change weakened it.
    High,
    /// Not a leak by itself: a difference from the migrations that makes
    /// one easier, or costs performance the policies depend on.
    Medium,
    /// Housekeeping: the gateway may fail, but nothing leaks.
    Low,
}

impl Severity {
    /// The lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Stable identifier of the check, e.g. `rls.not_forced`.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The object concerned: a table, a role, a policy, a migration.
    pub object: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to run (or do) to fix it.
    pub fix: String,
}

impl Finding {
    fn new(
        id: &'static str,
        severity: Severity,
        object: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id,
            severity,
            object: object.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// What an audit found, and what it could not check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The problems, most severe first.
    pub findings: Vec<Finding>,
    /// Checks skipped and other remarks that are not findings (for example
    /// a superuser login role, which development setups use).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds `other`'s findings and notes.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.notes.extend(other.notes);
        self.sort();
    }

    /// Whether a finding with this id was made.
    pub fn has(&self, id: &str) -> bool {
        self.findings.iter().any(|f| f.id == id)
    }

    fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (a.severity, a.id, &a.object).cmp(&(b.severity, b.id, &b.object)));
        self.findings.dedup();
    }
}

/// Something that answers catalog queries: the pool (one simple-protocol
/// message per query, so that a pooler in transaction mode is no
/// obstacle), a connection or a transaction (tests tamper with the catalog
/// in a transaction and audit it before rolling it back).
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// Runs `sql` (no parameters) and returns its rows.
    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, DbErr>;

    /// The text lines of `EXPLAIN (VERBOSE, COSTS OFF) query` after `setup`
    /// (`SET LOCAL` statements, the last one a `SET LOCAL ROLE`), in a
    /// transaction (or savepoint) that is rolled back.
    async fn explain_as(&self, setup: &str, query: &str) -> Result<Vec<String>, DbErr>;
}

async fn explain_in(
    txn: &DatabaseTransaction,
    setup: &str,
    query: &str,
) -> Result<Vec<String>, DbErr> {
    txn.execute_unprepared(setup).await?;
    let rows = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("EXPLAIN (VERBOSE, COSTS OFF) {query}"),
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect()
}

#[async_trait::async_trait]
impl Catalog for DatabaseConnection {
    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
        self.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
    }

    async fn explain_as(&self, setup: &str, query: &str) -> Result<Vec<String>, DbErr> {
        let txn = self.begin().await?;
        let lines = explain_in(&txn, setup, query).await;
        txn.rollback().await?;
        lines
    }
}

#[async_trait::async_trait]
impl Catalog for DatabaseTransaction {
    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
        self.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
    }

    async fn explain_as(&self, setup: &str, query: &str) -> Result<Vec<String>, DbErr> {
        // A savepoint: rolling it back undoes the SET LOCALs.
        let txn = self.begin().await?;
        let lines = explain_in(&txn, setup, query).await;
        txn.rollback().await?;
        lines
    }
}

#[async_trait::async_trait]
impl Catalog for Db {
    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
        self.simple(sql.to_owned()).await
    }

    async fn explain_as(&self, setup: &str, query: &str) -> Result<Vec<String>, DbErr> {
        let rows = self
            .simple(format!(
                "BEGIN; {setup}; EXPLAIN (VERBOSE, COSTS OFF) {query}; ROLLBACK"
            ))
            .await?;
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect()
    }
}

/// The first column of each row, as text.
async fn texts(cat: &impl Catalog, sql: &str) -> Result<Vec<String>, DbErr> {
    cat.query(sql)
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect()
}

/// The first two columns of each row, as text.
async fn pairs(cat: &impl Catalog, sql: &str) -> Result<Vec<(String, String)>, DbErr> {
    cat.query(sql)
        .await?
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// The owner of every object of the schema.
pub const OWNER: &str = "strata_owner";
/// The role the gateway logs in as in production.
pub const GATEWAY: &str = "strata_gateway";
/// The roles a request (or the run maintenance) switches to.
pub const RUNTIME_ROLES: &[&str] = &[
    "app_sme",
    "app_agency",
    "app_auth",
    "app_maint",
    "app_lease",
];
/// The tenant ledgers shared by both organization types, which carry no
/// `org_type` column.
const UNTYPED_LEDGERS: &[&str] = &["public.audit_log", "public.token_usage"];

/// `'a', 'b'` for an SQL `IN (...)` list of constants.
fn sql_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("'{}'", i.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The roles a request can become, the gateway's login role included.
fn request_roles() -> String {
    let mut all: Vec<&str> = RUNTIME_ROLES.to_vec();
    all.push(GATEWAY);
    sql_list(&all)
}

/// Tables of ours: every table of `tenant_b`, every table the owner owns or
/// that has an `org_id` column in `public`, and the tables the migrations
/// create (so a table whose owner was changed is still ours). Not the
/// migration bookkeeping table.
fn our_tables_filter() -> String {
    let expected = expected::tables();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    format!(
        "c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b') AND c.relname <> 'seaql_migrations'
         AND (n.nspname = 'tenant_b' OR pg_get_userbyid(c.relowner) = '{OWNER}'
              OR (n.nspname || '.' || c.relname) IN ({expected})
              OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))",
        expected = if expected.is_empty() {
            "''".to_owned()
        } else {
            sql_list(&expected)
        }
    )
}

/// Tables of ours with an `org_id` column: the tenant tables (as oids).
fn tenant_tables() -> String {
    format!(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {} AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)",
        our_tables_filter()
    )
}

/// `schema.table` of a `pg_class` row aliased `c`, whatever the search path.
const QUALIFIED: &str =
    "(SELECT n2.nspname || '.' || c.relname FROM pg_namespace n2 WHERE n2.oid = c.relnamespace)";

/// Runs every catalog check. Reads only; changes nothing.
pub async fn lint(cat: &impl Catalog) -> Result<Report, DbErr> {
    let mut report = Report::default();
    let citus = !texts(
        cat,
        "SELECT extname::text FROM pg_extension WHERE extname = 'citus'",
    )
    .await?
    .is_empty();
    if citus {
        report.notes.push(
            "Citus: the runtime roles may log in (the coordinator reaches the workers as them), no policy is restrictive (Citus would copy it to the shards as permissive; the migrations fold each into the permissive ones), and the migrations' policies are compared in that folded form, without their parentheses".into(),
        );
    }
    let f = &mut report.findings;
    row_level_security(cat, f).await?;
    roles(cat, f, citus).await?;
    reporting_logins(cat, f).await?;
    login_role(cat, &mut report).await?;
    let f = &mut report.findings;
    grants(cat, f).await?;
    policies(cat, f).await?;
    functions_and_views(cat, f).await?;
    keys(cat, f).await?;
    inlined(cat, &mut report).await?;
    if citus {
        citus_shards(cat, &mut report.findings).await?;
    }
    let current = migrations(cat, &mut report).await?;
    if current {
        expected_catalog(cat, &mut report, citus).await?;
    } else {
        report.notes.push(
            "policies, grants and role memberships were not compared with the migrations: the database is not at this binary's schema version".into(),
        );
    }
    report.sort();
    Ok(report)
}

/// Lints the database behind `db`, and probes it for leaks when asked.
pub async fn run(db: &Db, with_probe: bool) -> Result<Report, DbErr> {
    let mut report = lint(db).await?;
    if with_probe && db.is_citus() {
        // The probe acts as several runtime roles in one transaction; Citus
        // opens a worker connection per role and replays every `SET LOCAL`
        // of the transaction on each, so a role switch cannot reach the
        // workers. The isolation suites run on Citus instead.
        report.notes.push(
            "the leak probe was not run: on Citus one transaction cannot act as several runtime roles on the workers; the shard checks above ran instead".into(),
        );
    } else if with_probe {
        report.merge(probe(db).await?);
    }
    Ok(report)
}

async fn row_level_security(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let rows = cat
        .query(&format!(
            "SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    pg_get_userbyid(c.relowner)::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {} ORDER BY 1",
            our_tables_filter()
        ))
        .await?;
    for r in rows {
        let table: String = r.try_get_by_index(0)?;
        let enabled: bool = r.try_get_by_index(1)?;
        let forced: bool = r.try_get_by_index(2)?;
        let owner: String = r.try_get_by_index(3)?;
        if !enabled {
            f.push(Finding::new(
                "rls.disabled",
                Severity::Critical,
                &table,
                "row-level security is not enabled: every role with a grant on the table reads and writes every tenant's rows",
                format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;"),
            ));
        }
        if !forced {
            f.push(Finding::new(
                "rls.not_forced",
                Severity::Critical,
                &table,
                "row-level security is not forced: the table's owner skips every policy",
                format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY;"),
            ));
        }
        if owner != OWNER {
            f.push(Finding::new(
                "table.owner",
                Severity::High,
                &table,
                format!("owned by {owner}, not {OWNER}: its owner can change or drop its policies"),
                format!("ALTER TABLE {table} OWNER TO {OWNER};"),
            ));
        }
    }
    Ok(())
}

/// On Citus, what the coordinator's catalog does not show: every tenant
/// table is distributed or a reference table (a table left on the
/// coordinator alone cannot be joined with its tenant's shards), every
/// placement of one keeps row-level security enabled and forced, and no
/// node holds a restrictive policy of ours (Citus recreates one on the
/// shards as permissive, which widens the table's access instead of
/// narrowing it).
async fn citus_shards(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let local = texts(
        cat,
        &format!(
            "SELECT {QUALIFIED} FROM pg_class c WHERE c.oid IN ({})
               AND c.oid NOT IN (SELECT logicalrelid FROM pg_dist_partition) ORDER BY 1",
            tenant_tables()
        ),
    )
    .await?;
    for table in local {
        f.push(Finding::new(
            "citus.not_distributed",
            Severity::High,
            &table,
            "a tenant table that Citus does not know: it lives on the coordinator alone",
            format!("SELECT create_distributed_table('{table}', 'org_id', colocate_with => 'tenant_b.workspace_entities');"),
        ));
    }
    let shards = pairs(
        cat,
        &format!(
            "SELECT d.logicalrelid::regclass::text, p.nodename || ':' || p.nodeport || ' shard ' || p.shardid
             FROM pg_dist_partition d,
               LATERAL run_command_on_placements(d.logicalrelid,
                 $q$SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = '%s'::regclass$q$) p
             WHERE d.logicalrelid IN ({}) AND NOT (p.success AND p.result = 't')
             ORDER BY 1, 2",
            tenant_tables()
        ),
    )
    .await?;
    for (table, shard) in shards {
        f.push(Finding::new(
            "citus.shard_rls",
            Severity::Critical,
            format!("{table} ({shard})"),
            "a shard without row-level security enabled and forced: a role reaching the worker directly reads every tenant's rows of that shard",
            format!("SELECT run_command_on_placements('{table}', 'ALTER TABLE %s ENABLE ROW LEVEL SECURITY; ALTER TABLE %s FORCE ROW LEVEL SECURITY');"),
        ));
    }
    let restrictive = pairs(
        cat,
        "SELECT (SELECT n.nodename || ':' || n.nodeport FROM pg_dist_node n WHERE n.nodeid = r.nodeid), r.result
             FROM run_command_on_all_nodes(
               $q$SELECT coalesce(string_agg(polrelid::regclass::text || ' ' || polname, ', '), '')
                  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT p.polpermissive AND n.nspname IN ('public', 'tenant_b', 'app', 'reporting')$q$) r
             WHERE r.result <> ''
             ORDER BY 1",
    )
    .await?;
    for (node, policies) in restrictive {
        f.push(Finding::new(
            "citus.restrictive_policy",
            Severity::Critical,
            format!("{node}: {policies}"),
            "a restrictive policy on Citus: its shards carry it as a permissive one, which lets through what it should refuse",
            "fold it into the table's permissive policies (as the migrations do) and drop it",
        ));
    }
    Ok(())
}

/// The reporting roles and the logins of `strata org reporting-login`: the
/// two group roles cannot log in and hold nothing but each other; every
/// role in them is a login that the command made (a row in
/// `app.reporting_logins`, or a name of the command's, which another
/// database of the cluster may own: roles are cluster-wide), skips no
/// policy, and is a member of nothing else, so it can neither see past its
/// organization nor become a runtime role.
async fn reporting_logins(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let ours = texts(
        cat,
        "SELECT 1::text FROM pg_roles WHERE rolname = 'app_reporting'
           AND to_regclass('app.reporting_logins') IS NOT NULL",
    )
    .await?;
    if ours.is_empty() {
        return Ok(());
    }
    // The group roles: no login, no bypass, and app_reporting_client a
    // member of app_reporting only.
    let groups = pairs(
        cat,
        "SELECT r.rolname::text,
                concat_ws(', ',
                  CASE WHEN r.rolcanlogin THEN 'can log in' END,
                  CASE WHEN r.rolsuper OR r.rolbypassrls THEN 'skips row-level security' END,
                  (SELECT 'is a member of ' || string_agg(g.rolname, ', ' ORDER BY g.rolname)
                     FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    WHERE m.member = r.oid
                      AND NOT (r.rolname = 'app_reporting_client' AND g.rolname = 'app_reporting')))
           FROM pg_roles r WHERE r.rolname IN ('app_reporting', 'app_reporting_client')",
    )
    .await?;
    for (role, problem) in groups {
        if !problem.is_empty() {
            f.push(Finding::new(
                "reporting.group",
                Severity::Critical,
                &role,
                format!("the reporting group role {problem}: every reporting login inherits it"),
                format!("ALTER ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS; then revoke what it was granted"),
            ));
        }
    }
    // Every member of the groups, directly or not.
    let members = pairs(
        cat,
        "WITH RECURSIVE inside(oid) AS (
             SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
              WHERE g.rolname IN ('app_reporting', 'app_reporting_client')
             UNION
             SELECT m.member FROM pg_auth_members m JOIN inside i ON m.roleid = i.oid)
         SELECT r.rolname::text,
                concat_ws(', ',
                  CASE WHEN r.rolname NOT LIKE 'strata\\_report\\_%'
                        AND NOT EXISTS (SELECT 1 FROM app.reporting_logins l WHERE l.login = r.rolname)
                       THEN 'is no login of strata org reporting-login' END,
                  CASE WHEN r.rolsuper OR r.rolbypassrls THEN 'skips row-level security' END,
                  CASE WHEN r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                       THEN 'may create roles or databases, or replicate' END,
                  (SELECT 'is also a member of ' || string_agg(g.rolname, ', ' ORDER BY g.rolname)
                     FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    WHERE m.member = r.oid AND g.rolname NOT IN ('app_reporting', 'app_reporting_client')))
           FROM pg_roles r
          WHERE r.oid IN (SELECT oid FROM inside)
            AND r.rolname NOT IN ('app_reporting', 'app_reporting_client')
          ORDER BY 1",
    )
    .await?;
    for (login, problem) in members {
        if !problem.is_empty() {
            f.push(Finding::new(
                "reporting.login",
                Severity::Critical,
                &login,
                format!("a role in the reporting groups {problem}: it may read past its organization's rows"),
                format!("strata org reporting-login <org> --revoke (or DROP ROLE {login}) and create it again"),
            ));
        }
    }
    Ok(())
}

async fn roles(cat: &impl Catalog, f: &mut Vec<Finding>, citus: bool) -> Result<(), DbErr> {
    let mut all: Vec<&str> = RUNTIME_ROLES.to_vec();
    all.extend([GATEWAY, OWNER]);
    let rows = cat
        .query(&format!(
            "SELECT r.name, coalesce(a.rolsuper, false), coalesce(a.rolbypassrls, false),
                    coalesce(a.rolcanlogin, false), coalesce(a.rolcreaterole OR a.rolcreatedb OR a.rolreplication, false),
                    coalesce(a.rolinherit, false), a.oid IS NOT NULL
             FROM unnest(ARRAY[{}]) AS r(name) LEFT JOIN pg_roles a ON a.rolname = r.name ORDER BY 1",
            sql_list(&all)
        ))
        .await?;
    for r in rows {
        let role: String = r.try_get_by_index(0)?;
        let [superuser, bypass, login, create, inherit, exists]: [bool; 6] = [
            r.try_get_by_index(1)?,
            r.try_get_by_index(2)?,
            r.try_get_by_index(3)?,
            r.try_get_by_index(4)?,
            r.try_get_by_index(5)?,
            r.try_get_by_index(6)?,
        ];
        if !exists {
            f.push(Finding::new(
                "role.missing",
                Severity::High,
                &role,
                "the role does not exist: requests that switch to it fail",
                "strata migrate up",
            ));
            continue;
        }
        if superuser {
            f.push(Finding::new(
                "role.superuser",
                Severity::Critical,
                &role,
                "a superuser skips every policy",
                format!("ALTER ROLE {role} NOSUPERUSER;"),
            ));
        }
        if bypass {
            f.push(Finding::new(
                "role.bypassrls",
                Severity::Critical,
                &role,
                "BYPASSRLS skips every policy",
                format!("ALTER ROLE {role} NOBYPASSRLS;"),
            ));
        }
        if create {
            f.push(Finding::new(
                "role.attribute",
                Severity::High,
                &role,
                "CREATEROLE, CREATEDB or REPLICATION: more than a request needs",
                format!("ALTER ROLE {role} NOCREATEROLE NOCREATEDB NOREPLICATION;"),
            ));
        }
        // On Citus a query reaches the workers as its role, which must log
        // in there (deploy/README.md: who may, from where).
        if login && role != GATEWAY && !citus {
            f.push(Finding::new(
                "role.login",
                Severity::High,
                &role,
                "the role can log in: nobody should act as it outside a request's transaction",
                format!("ALTER ROLE {role} NOLOGIN;"),
            ));
        }
        if inherit && role == GATEWAY {
            f.push(Finding::new(
                "role.gateway_inherits",
                Severity::Medium,
                &role,
                "the gateway's login role inherits the runtime roles' privileges instead of switching to them",
                format!("ALTER ROLE {role} NOINHERIT;"),
            ));
        }
    }
    let roles = request_roles();
    let owned = pairs(
        cat,
        &format!(
            "SELECT pg_get_userbyid(c.relowner)::text, 'relation ' || {QUALIFIED} FROM pg_class c
             WHERE pg_get_userbyid(c.relowner) IN ({roles})
             UNION ALL
             SELECT pg_get_userbyid(p.proowner)::text, 'function ' || p.oid::regprocedure::text FROM pg_proc p
             WHERE pg_get_userbyid(p.proowner) IN ({roles})
             UNION ALL
             SELECT pg_get_userbyid(nspowner)::text, 'schema ' || nspname::text FROM pg_namespace
             WHERE pg_get_userbyid(nspowner) IN ({roles})
             ORDER BY 1, 2"
        ),
    )
    .await?;
    for (role, object) in owned {
        f.push(Finding::new(
            "role.owns",
            Severity::Critical,
            format!("{role}: {object}"),
            format!("{role} owns {object}: an owner skips policies unless they are forced, and can drop them"),
            format!("REASSIGN OWNED BY {role} TO {OWNER};"),
        ));
    }
    Ok(())
}

async fn login_role(cat: &impl Catalog, report: &mut Report) -> Result<(), DbErr> {
    let rows = cat
        .query(&format!(
            "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                    array_to_string(ARRAY(SELECT x FROM unnest(ARRAY['app_sme', 'app_agency', 'app_auth', 'app_maint', 'app_lease']) x
                                          WHERE EXISTS (SELECT 1 FROM pg_roles y WHERE y.rolname = x)
                                            AND NOT pg_has_role(current_user, x, 'MEMBER')), ', '),
                    EXISTS (SELECT 1 FROM pg_roles o WHERE o.rolname = '{OWNER}') AND pg_has_role(current_user, '{OWNER}', 'USAGE')
             FROM pg_roles r WHERE r.rolname = current_user"
        ))
        .await?;
    let Some(r) = rows.first() else {
        return Ok(());
    };
    let name: String = r.try_get_by_index(0)?;
    let superuser: bool = r.try_get_by_index(1)?;
    let bypass: bool = r.try_get_by_index(2)?;
    let cannot_switch: String = r.try_get_by_index(3)?;
    let acts_as_owner: bool = r.try_get_by_index(4)?;
    if superuser {
        report.notes.push(format!(
            "logged in as {name}, a superuser: requests still switch to runtime roles, but production should log in as {GATEWAY} (this audit may use another login than the gateway)"
        ));
        return Ok(());
    }
    if bypass {
        report.findings.push(Finding::new(
            "login.bypassrls",
            Severity::Critical,
            &name,
            "the login role bypasses row-level security: anything it runs before switching roles sees every tenant",
            format!("ALTER ROLE {name} NOBYPASSRLS;"),
        ));
    }
    if !cannot_switch.is_empty() {
        report.findings.push(Finding::new(
            "login.cannot_switch",
            Severity::Low,
            &name,
            format!(
                "the login role cannot switch to {cannot_switch}: requests that need them fail"
            ),
            format!("GRANT {cannot_switch} TO {name};"),
        ));
    }
    if acts_as_owner && name != OWNER {
        report.notes.push(format!(
            "logged in as {name}, which holds {OWNER}'s privileges: fine for migrating, but the gateway should log in as {GATEWAY}"
        ));
    }
    Ok(())
}

async fn grants(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let roles = request_roles();
    let dangerous = texts(
        cat,
        &format!(
            "SELECT r.rolname || ' ' || p.priv || ' ' || n.nspname || '.' || c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN (SELECT rolname::text FROM pg_roles WHERE rolname IN ({roles})) AS r
             CROSS JOIN (VALUES ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS p(priv)
             WHERE {} AND has_table_privilege(r.rolname, c.oid, p.priv) ORDER BY 1",
            our_tables_filter()
        ),
    )
    .await?;
    for line in dangerous {
        let mut parts = line.splitn(3, ' ');
        let (role, privilege, table) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        f.push(Finding::new(
            "grant.dangerous",
            Severity::High,
            format!("{role} on {table}"),
            format!("{role} holds {privilege}, which ignores row-level security"),
            format!("REVOKE {privilege} ON {table} FROM {role};"),
        ));
    }
    // app_sme has nothing in tenant_b; app_agency writes no SME content
    // (the tables whose org_type is pinned to SME).
    let cross = pairs(
        cat,
        "SELECT 'app_sme', 'schema tenant_b' FROM pg_roles WHERE rolname = 'app_sme'
           AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_b')
           AND has_schema_privilege('app_sme', 'tenant_b', 'USAGE')
         UNION ALL
         SELECT 'app_sme', 'tenant_b.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'tenant_b' AND c.relkind IN ('r', 'p', 'v', 'm')
           AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_sme')
           AND has_table_privilege('app_sme', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
         UNION ALL
         SELECT 'app_agency', 'public.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_agency')
           AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'
                       AND pg_get_constraintdef(k.oid) ~ 'org_type = ''SME''')
           AND has_table_privilege('app_agency', c.oid, 'INSERT, UPDATE, DELETE')
         ORDER BY 1, 2",
    )
    .await?;
    for (role, object) in cross {
        let fix = match object.strip_prefix("schema ") {
            Some(schema) => format!("REVOKE ALL ON SCHEMA {schema} FROM {role};"),
            None => format!("REVOKE ALL ON {object} FROM {role};"),
        };
        f.push(Finding::new(
            "grant.cross_type",
            Severity::High,
            format!("{role} on {object}"),
            format!("{role} reaches {object}, which belongs to the other organization type"),
            fix,
        ));
    }
    Ok(())
}

async fn policies(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let rows = cat
        .query(
            "SELECT schemaname || '.' || tablename, policyname::text, permissive,
                    array_to_string(roles, ','), coalesce(qual, ''), coalesce(with_check, '')
             FROM pg_policies WHERE schemaname IN ('public', 'tenant_b') ORDER BY 1, 2",
        )
        .await?;
    for r in rows {
        let table: String = r.try_get_by_index(0)?;
        let name: String = r.try_get_by_index(1)?;
        let permissive: String = r.try_get_by_index(2)?;
        let roles: String = r.try_get_by_index(3)?;
        let qual: String = r.try_get_by_index(4)?;
        let check: String = r.try_get_by_index(5)?;
        let object = format!("{table} {name}");
        let drop =
            format!("DROP POLICY {name} ON {table};  -- or restore it: strata migrate status");
        let expr = format!("{qual} / {check}").to_lowercase();
        if expr.contains("select") || expr.contains("exists") {
            f.push(Finding::new(
                "policy.subselect",
                Severity::Medium,
                &object,
                "the policy runs a sub-select for every row (slow, and refused by Citus)",
                drop.clone(),
            ));
        }
        if expr.contains("is null") {
            f.push(Finding::new(
                "policy.null_escape",
                Severity::Critical,
                &object,
                "the policy has an IS NULL branch: a request without a context could see every row",
                drop.clone(),
            ));
        }
        let always = |e: &str| e.trim() == "true";
        if permissive == "PERMISSIVE" && (always(&qual) || always(&check)) {
            f.push(Finding::new(
                "policy.always_true",
                Severity::Critical,
                &object,
                format!("a permissive policy for {roles} that lets every row through"),
                drop,
            ));
        }
    }
    let row_argument = texts(
        cat,
        "SELECT pol.polrelid::regclass::text || ' ' || pol.polname
         FROM pg_policy pol
         WHERE coalesce(pol.polqual::text, '') ~ ':varattno 0 ' OR coalesce(pol.polwithcheck::text, '') ~ ':varattno 0 '
            OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                       CROSS JOIN LATERAL unnest(p.proargtypes::oid[]) AS arg(t) JOIN pg_type ty ON ty.oid = arg.t
                       WHERE d.classid = 'pg_policy'::regclass AND d.objid = pol.oid AND d.refclassid = 'pg_proc'::regclass
                         AND (ty.typtype IN ('c', 'p') OR ty.typrelid <> 0))
         ORDER BY 1",
    )
    .await?;
    for object in row_argument {
        f.push(Finding::new(
            "policy.row_argument",
            Severity::Medium,
            &object,
            "the policy hands a whole row to an expression or function: it cannot use an index and is evaluated per row",
            "drop the policy and restore the migrations' one",
        ));
    }
    Ok(())
}

async fn functions_and_views(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let definers = texts(
        cat,
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('app', 'public', 'tenant_b') AND p.prosecdef ORDER BY 1",
    )
    .await?;
    for function in definers {
        f.push(Finding::new(
            "function.security_definer",
            Severity::Critical,
            &function,
            "a SECURITY DEFINER function runs with its owner's privileges, past the runtime roles' grants",
            format!("ALTER FUNCTION {function} SECURITY INVOKER;"),
        ));
    }
    let not_inlinable = texts(
        cat,
        "SELECT p.oid::regprocedure::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = 'app' AND p.proname <> 'begin_request'
           AND (p.provolatile <> 's' OR p.prosecdef OR l.lanname <> 'sql'
                OR p.proconfig IS NOT NULL OR p.prosrc ~ '(^|[^.])current_setting')
         ORDER BY 1",
    )
    .await?;
    for function in not_inlinable {
        f.push(Finding::new(
            "function.not_inlinable",
            Severity::Medium,
            &function,
            "a context helper that is not inlinable STABLE SQL with a schema-qualified body: policies call it once per row",
            "strata migrate fresh on a copy to compare, then restore the migrations' definition",
        ));
    }
    let views = texts(
        cat,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND n.nspname IN ('public', 'tenant_b', 'app', 'reporting')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                           AND d.objid = c.oid AND d.deptype = 'e')
           AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(c.reloptions, '{}')) o
                           WHERE lower(o) IN ('security_invoker=on', 'security_invoker=true', 'security_invoker=1', 'security_invoker=yes'))
         ORDER BY 1",
    )
    .await?;
    for view in views {
        f.push(Finding::new(
            "view.definer",
            Severity::Critical,
            &view,
            "the view runs as its owner, not its caller: it shows every tenant's rows",
            format!("ALTER VIEW {view} SET (security_invoker = on);"),
        ));
    }
    Ok(())
}

/// Each foreign key with its column pairs, `child>parent`.
const FOREIGN_KEYS: &str = "SELECT k.conname, k.conrelid, k.confrelid,
        array(SELECT a.attname::text || '>' || b.attname::text
              FROM unnest(k.conkey, k.confkey) AS u(c, p)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.c
              JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = u.p) AS pairs
    FROM pg_constraint k WHERE k.contype = 'f'";

async fn keys(cat: &impl Catalog, f: &mut Vec<Finding>) -> Result<(), DbErr> {
    let tenant = tenant_tables();
    let name = |rel: &str| {
        format!(
            "(SELECT n3.nspname || '.' || c3.relname FROM pg_class c3 JOIN pg_namespace n3 ON n3.oid = c3.relnamespace WHERE c3.oid = {rel})"
        )
    };
    let has = |rel: &str, col: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = {rel} AND a.attname = '{col}' AND NOT a.attisdropped)"
        )
    };
    let checks: Vec<(&'static str, Severity, String, &'static str, &'static str)> = vec![
        (
            "key.primary",
            Severity::Medium,
            format!(
                "SELECT {QUALIFIED} FROM pg_class c WHERE c.oid IN ({tenant})
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                                   WHERE k.conrelid = c.oid AND k.contype = 'p' AND a.attname = 'org_id')"
            ),
            "the primary key does not lead with org_id",
            "recreate the primary key as (org_id, ...) as the migrations do",
        ),
        (
            "key.foreign",
            Severity::High,
            format!(
                "WITH fk AS ({FOREIGN_KEYS})
                 SELECT {child} || ' ' || conname FROM fk
                 WHERE conrelid IN ({tenant}) AND (
                       (confrelid IN ({tenant}) AND NOT 'org_id>org_id' = ANY (pairs))
                    OR (confrelid = (SELECT oid FROM pg_class WHERE relname = 'organizations' AND relnamespace = 'public'::regnamespace)
                        AND NOT 'org_id>id' = ANY (pairs))
                    OR (confrelid IN ({tenant}) AND {child_client} AND {parent_client}
                        AND NOT 'client_id>client_id' = ANY (pairs)))",
                child = name("conrelid"),
                child_client = has("conrelid", "client_id"),
                parent_client = has("confrelid", "client_id"),
            ),
            "a foreign key to a tenant's rows without org_id (or client_id): a row can point at another tenant's, and the error tells that it exists",
            "recreate the foreign key over (org_id, ...) as the migrations do",
        ),
        (
            "key.unique",
            Severity::Medium,
            format!(
                "SELECT (SELECT n.nspname || '.' || i.relname FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace WHERE i.oid = x.indexrelid)
                 FROM pg_index x
                 WHERE x.indisunique AND x.indrelid IN ({tenant})
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = x.indrelid AND a.attname = 'org_id'
                                   AND a.attnum = ANY (x.indkey::int2[]))"
            ),
            "a unique index without org_id: a tenant learns from a conflict that another tenant has the value",
            "recreate the index with org_id as its first column",
        ),
        (
            "index.org_id",
            Severity::Low,
            format!(
                "SELECT {QUALIFIED} FROM pg_class c WHERE c.oid IN ({tenant})
                   AND NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                                   WHERE x.indrelid = c.oid AND a.attname = 'org_id')"
            ),
            "no index leads with org_id: every policy check scans the table",
            "CREATE INDEX ON <table> (org_id, created_at DESC, id DESC);",
        ),
        (
            "key.org_type",
            Severity::High,
            format!(
                "WITH fk AS ({FOREIGN_KEYS})
                 SELECT {QUALIFIED} || ': ' || v.problem
                 FROM pg_class c
                 CROSS JOIN LATERAL (VALUES
                   ('org_type is nullable',
                    NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = c.oid AND attname = 'org_type')),
                   ('no CHECK on org_type naming SME or AGENCY',
                    NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                                WHERE k.conrelid = c.oid AND k.contype = 'c' AND a.attname = 'org_type'
                                  AND pg_get_constraintdef(k.oid) ~ '''(SME|AGENCY)''')),
                   ('no foreign key (org_id, org_type) -> organizations (id, type)',
                    NOT EXISTS (SELECT 1 FROM fk WHERE fk.conrelid = c.oid
                                  AND fk.confrelid = (SELECT oid FROM pg_class WHERE relname = 'organizations' AND relnamespace = 'public'::regnamespace)
                                  AND fk.pairs @> ARRAY['org_id>id', 'org_type>type'] AND cardinality(fk.pairs) = 2))
                 ) AS v(problem, bad)
                 WHERE v.bad AND c.oid IN ({tenant}) AND {typed}",
                typed = has("c.oid", "org_type"),
            ),
            "the organization type is not pinned: an agency's row could land in an SME table",
            "add org_type NOT NULL, its CHECK and the composite foreign key as the migrations do",
        ),
        (
            "key.untyped",
            Severity::Low,
            format!(
                "SELECT {QUALIFIED} FROM pg_class c WHERE c.oid IN ({tenant}) AND NOT {typed}
                   AND {QUALIFIED} NOT IN ({ledgers})",
                typed = has("c.oid", "org_type"),
                ledgers = sql_list(UNTYPED_LEDGERS),
            ),
            "a tenant table without org_type: nothing keeps the other organization type's rows out",
            "add org_type NOT NULL with its CHECK and a foreign key (org_id, org_type) -> organizations (id, type)",
        ),
        (
            "key.organizations",
            Severity::High,
            "SELECT 'public.organizations' WHERE EXISTS (SELECT 1 FROM pg_class WHERE relname = 'organizations' AND relnamespace = 'public'::regnamespace)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'public.organizations'::regclass
                               AND contype IN ('u', 'p') AND pg_get_constraintdef(oid) = 'UNIQUE (id, type)')"
                .to_owned(),
            "organizations has no UNIQUE (id, type): typed tables cannot reference it",
            "ALTER TABLE public.organizations ADD CONSTRAINT organizations_id_type_key UNIQUE (id, type);",
        ),
    ];
    for (id, severity, sql, message, fix) in checks {
        for object in texts(cat, &sql).await? {
            f.push(Finding::new(id, severity, object, message, fix));
        }
    }
    Ok(())
}

/// The context helpers are inlined into the policies: the plan of a
/// policy-filtered query, as a runtime role, shows `current_setting` and
/// no call of a helper.
async fn inlined(cat: &impl Catalog, report: &mut Report) -> Result<(), DbErr> {
    let setup = "SET LOCAL app.org_id = '00000000-0000-0000-0000-000000000001'; \
                 SET LOCAL app.all_clients = 'false'; SET LOCAL ROLE app_agency";
    let query =
        "SELECT id FROM tenant_b.campaigns WHERE org_id = '00000000-0000-0000-0000-000000000001'";
    let plan = match cat.explain_as(setup, query).await {
        Ok(lines) => lines.join("\n"),
        Err(e) => {
            report.notes.push(format!(
                "the plan of a policy-filtered query could not be read as app_agency ({e}): whether the context helpers are inlined was not checked"
            ));
            return Ok(());
        }
    };
    let called = [
        "app.current_org_id(",
        "app.current_client_ids(",
        "app.all_clients(",
    ]
    .iter()
    .any(|call| plan.contains(call));
    if called || !plan.contains("current_setting") {
        report.findings.push(Finding::new(
            "policy.not_inlined",
            Severity::Medium,
            "tenant_b.campaigns",
            "the policies' context helpers are called per row instead of inlined",
            "restore the helpers of the migrations (LANGUAGE sql STABLE, no SET clause)",
        ));
    }
    Ok(())
}

/// Compares the migration table with this binary's migrations; true when
/// they are the same.
async fn migrations(cat: &impl Catalog, report: &mut Report) -> Result<bool, DbErr> {
    use migration::MigratorTrait;
    let known: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let applied = match texts(cat, "SELECT version FROM seaql_migrations ORDER BY version").await {
        Ok(applied) => applied,
        Err(e) => {
            let missing = texts(
                cat,
                "SELECT 'x' WHERE to_regclass('seaql_migrations') IS NULL",
            )
            .await?;
            if missing.is_empty() {
                report
                    .notes
                    .push(format!("the migration table could not be read: {e}"));
            } else {
                report.findings.push(Finding::new(
                    "migrations.missing",
                    Severity::Critical,
                    "seaql_migrations",
                    "the database was never migrated",
                    "strata migrate up",
                ));
            }
            return Ok(false);
        }
    };
    let applied_set: BTreeSet<&String> = applied.iter().collect();
    let known_set: BTreeSet<&String> = known.iter().collect();
    for name in known.iter().filter(|n| !applied_set.contains(n)) {
        report.findings.push(Finding::new(
            "migrations.pending",
            Severity::High,
            name,
            "a migration of this binary has not run on the database",
            "strata migrate up",
        ));
    }
    for name in applied.iter().filter(|n| !known_set.contains(n)) {
        report.findings.push(Finding::new(
            "migrations.unknown",
            Severity::Medium,
            name,
            "the database ran a migration this binary does not know: it is older than the schema",
            "run the audit of the release that migrated the database",
        ));
    }
    Ok(applied_set == known_set)
}

/// Policies, grants and memberships against the set the migrations create.
async fn expected_catalog(
    cat: &impl Catalog,
    report: &mut Report,
    citus: bool,
) -> Result<(), DbErr> {
    // The table lines only name what is ours; the other checks judge them.
    let compared = |l: &&str| !l.starts_with("table ");
    let mut actual = expected::catalog_lines(cat).await?;
    let mut wanted_owned: Vec<String> = expected::lines().into_iter().map(str::to_owned).collect();
    if citus {
        let related = pairs(
            cat,
            "SELECT a.rolname::text, b.rolname::text FROM pg_roles a CROSS JOIN pg_roles b
             WHERE a.rolname <> b.rolname AND a.rolname ~ '^(app_|strata_)' AND b.rolname ~ '^(app_|strata_)'
               AND (pg_has_role(a.oid, b.oid, 'USAGE') OR pg_has_role(b.oid, a.oid, 'USAGE'))",
        )
        .await?;
        wanted_owned = expected::folded_for_citus(&wanted_owned, |a, b| {
            related.iter().any(|(x, y)| x == a && y == b)
        });
        wanted_owned = wanted_owned
            .iter()
            .map(|l| expected::without_parentheses(l))
            .collect();
        actual = actual
            .iter()
            .map(|l| expected::without_parentheses(l))
            .collect();
    }
    let wanted: Vec<&str> = wanted_owned.iter().map(String::as_str).collect();
    let actual_set: BTreeSet<&str> = actual.iter().map(String::as_str).filter(compared).collect();
    let wanted_set: BTreeSet<&str> = wanted.iter().copied().filter(compared).collect();
    let policy_key = |line: &str| -> Option<String> {
        // "policy <table> <name> ...": the table and the name.
        let mut words = line.split(' ');
        (words.next() == Some("policy")).then(|| {
            format!(
                "{} {}",
                words.next().unwrap_or(""),
                words.next().unwrap_or("")
            )
        })
    };
    let wanted_policies: BTreeSet<String> = wanted.iter().filter_map(|l| policy_key(l)).collect();
    let actual_policies: BTreeSet<String> = actual.iter().filter_map(|l| policy_key(l)).collect();
    for line in actual_set.difference(&wanted_set) {
        report.findings.push(unexpected(line, &wanted_policies));
    }
    for line in wanted_set.difference(&actual_set) {
        if let Some(key) = policy_key(line) {
            if actual_policies.contains(&key) {
                continue; // reported as changed
            }
            report.findings.push(Finding::new(
                "policy.missing",
                Severity::High,
                key,
                format!("a policy of the migrations is missing: {line}"),
                "restore it from the migrations (schema.sql shows each table's policies)",
            ));
        } else {
            report.findings.push(Finding::new(
                "grant.missing",
                Severity::Low,
                *line,
                "a grant or membership of the migrations is missing: requests that need it fail",
                "restore it from the migrations (schema.sql shows each table's grants)",
            ));
        }
    }
    Ok(())
}

fn unexpected(line: &str, wanted_policies: &BTreeSet<String>) -> Finding {
    let words: Vec<&str> = line.split(' ').collect();
    match words.first().copied() {
        Some("policy") => {
            let table = words.get(1).copied().unwrap_or_default();
            let name = words.get(2).copied().unwrap_or_default();
            let key = format!("{table} {name}");
            let permissive = words.get(3) == Some(&"PERMISSIVE");
            if wanted_policies.contains(&key) {
                Finding::new(
                    "policy.changed",
                    Severity::Critical,
                    key,
                    format!("the policy differs from the migrations': {line}"),
                    format!(
                        "DROP POLICY {name} ON {table}; then restore it from the migrations (schema.sql)"
                    ),
                )
            } else {
                Finding::new(
                    "policy.unexpected",
                    if permissive {
                        Severity::Critical
                    } else {
                        Severity::Medium
                    },
                    key,
                    format!(
                        "a policy the migrations did not create{}: {line}",
                        if permissive {
                            " (permissive: it widens what a role sees)"
                        } else {
                            ""
                        }
                    ),
                    format!("DROP POLICY {name} ON {table};"),
                )
            }
        }
        Some("member") => {
            let member = words.get(1).copied().unwrap_or_default();
            let role = words.get(3).copied().unwrap_or_default();
            Finding::new(
                "grant.unexpected",
                Severity::High,
                line,
                format!("{member} was made a member of {role}, which the migrations did not do"),
                format!("REVOKE {role} FROM {member};"),
            )
        }
        _ => {
            // "<kind> <grantee> <privilege> <object>"
            let grantee = words.get(1).copied().unwrap_or_default();
            let privilege = words.get(2).copied().unwrap_or_default();
            let object = words[3.min(words.len())..].join(" ");
            let on = match words.first().copied() {
                Some("schema") => format!("SCHEMA {object}"),
                Some("function") => format!("FUNCTION {object}"),
                Some("column") => object
                    .rsplit_once('.')
                    .map_or_else(|| object.clone(), |(table, _)| table.to_owned()),
                _ => object.clone(),
            };
            let privilege_sql = match (words.first().copied(), object.rsplit_once('.')) {
                (Some("column"), Some((_, column))) => format!("{privilege} ({column})"),
                _ => privilege.to_owned(),
            };
            Finding::new(
                "grant.unexpected",
                Severity::High,
                line,
                format!(
                    "{grantee} holds {privilege} on {object}, which the migrations did not grant"
                ),
                format!("REVOKE {privilege_sql} ON {on} FROM {grantee};"),
            )
        }
    }
}
