//! The leak probe of `strata audit --probe`: it leaves no trace.
//!
//! Inside one transaction, which is always rolled back, it creates canary
//! organizations of both types (two SMEs and two agencies, the agencies
//! with two clients each), each with an owner and a row in every tenant
//! table it knows, written through the runtime roles as requests write
//! them. Then, as each runtime role (`app_sme`, `app_agency`, `app_auth`) with each
//! canary's context, it tries, in every table of ours found from the
//! catalog (so a new table is covered without code), to read, update and
//! delete rows of any other organization (canaries and real tenants
//! alike; the counts are all it reads) and to insert a copy of another
//! canary's row. With an agency canary's context limited to one of its
//! clients, it tries the same on the other client's rows. Every row it
//! could see or change is a finding.
//!
//! Before attacking, each canary must see its own rows: a probe whose
//! contexts see nothing would prove nothing, so that is an error, not a
//! clean report.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

use super::{Finding, Report, Severity};
use crate::db::Db;

/// A request id the probe's statements carry (visible in
/// `pg_stat_activity` while it runs).
const REQUEST_ID: &str = "strata-audit-probe";

/// The roles requests run as, each tried with every canary's context: the
/// tenant roles and `app_auth`, which resolves credentials (the
/// maintenance roles take no tenant context; their grants are compared
/// with the migrations' instead).
const RUNTIME_ROLES: [&str; 3] = ["app_sme", "app_agency", "app_auth"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sme,
    Agency,
}

impl Kind {
    fn role(self) -> &'static str {
        match self {
            Kind::Sme => "app_sme",
            Kind::Agency => "app_agency",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Kind::Sme => "SME",
            Kind::Agency => "AGENCY",
        }
    }
}

#[derive(Debug)]
struct Canary {
    label: &'static str,
    kind: Kind,
    org: Uuid,
    user: Uuid,
    clients: Vec<Uuid>,
}

impl Canary {
    fn new(label: &'static str, kind: Kind) -> Self {
        Self {
            label,
            kind,
            org: Uuid::new_v4(),
            user: Uuid::new_v4(),
            clients: match kind {
                Kind::Sme => Vec::new(),
                Kind::Agency => vec![Uuid::new_v4(), Uuid::new_v4()],
            },
        }
    }
}

/// A table of ours and the columns the probe filters it by.
#[derive(Debug)]
struct Table {
    /// `schema.table`, for reports.
    name: String,
    /// Quoted for SQL.
    sql: String,
    /// Whose rows they are: `org_id`, or the `id` of organizations (an
    /// organization) or users (a user).
    owner_column: &'static str,
    owner_is_user: bool,
    /// The column naming a row's client (agency tables), if any.
    client_column: Option<&'static str>,
}

/// Probes the database behind `db` for leaks between tenants; see the
/// module documentation. Everything it writes is rolled back.
pub async fn probe(db: &Db) -> Result<Report, DbErr> {
    let txn = db.raw().begin().await?;
    let result = run(&txn).await;
    let rolled_back = txn.rollback().await;
    let report = result?;
    rolled_back?;
    Ok(report)
}

async fn run(txn: &DatabaseTransaction) -> Result<Report, DbErr> {
    txn.execute_unprepared("SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '60s'")
        .await?;
    let canaries = [
        Canary::new("SME canary 1", Kind::Sme),
        Canary::new("SME canary 2", Kind::Sme),
        Canary::new("agency canary 1", Kind::Agency),
        Canary::new("agency canary 2", Kind::Agency),
    ];
    let mut seeded: BTreeMap<usize, BTreeSet<&'static str>> = BTreeMap::new();
    for (i, c) in canaries.iter().enumerate() {
        seeded.insert(
            i,
            seed(txn, c).await.map_err(|e| {
                DbErr::Custom(format!(
                    "the probe could not write its {} through the runtime roles: {e}",
                    c.label
                ))
            })?,
        );
    }
    let tables = tables(txn).await?;
    let mut report = Report::default();

    // Each canary's own row of each table, read in its own context (so a
    // context that sees nothing is caught), and for agencies a row of
    // their second client.
    let mut own: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut second_client: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for (ci, c) in canaries.iter().enumerate() {
        begin_as(txn, c, c.kind.role(), None).await?;
        for (ti, t) in tables.iter().enumerate() {
            let key = if t.owner_is_user { c.user } else { c.org };
            let row = attempt(txn, |txn| async move {
                first_text(
                    txn,
                    &format!(
                        "SELECT r::text FROM {} r WHERE {} = $1 LIMIT 1",
                        t.sql, t.owner_column
                    ),
                    vec![key.into()],
                )
                .await
            })
            .await;
            match row {
                Ok(Some(text)) => {
                    own.insert((ci, ti), text);
                }
                Ok(None) | Err(_) => {
                    if seeded[&ci].contains(t.name.as_str()) {
                        return Err(DbErr::Custom(format!(
                            "the probe's {} cannot see its own row in {} as {}: its contexts do not work, so it would prove nothing",
                            c.label,
                            t.name,
                            c.kind.role()
                        )));
                    }
                }
            }
            if let (Some(col), Some(other)) = (t.client_column, c.clients.get(1)) {
                let other = *other;
                if let Ok(Some(text)) = attempt(txn, |txn| async move {
                    first_text(
                        txn,
                        &format!(
                            "SELECT r::text FROM {} r WHERE org_id = $1 AND {col} = $2 LIMIT 1",
                            t.sql
                        ),
                        vec![c.org.into(), other.into()],
                    )
                    .await
                })
                .await
                {
                    second_client.insert((ci, ti), text);
                }
            }
        }
    }
    let unseeded: Vec<&str> = tables
        .iter()
        .enumerate()
        .filter(|(ti, _)| {
            !canaries
                .iter()
                .enumerate()
                .any(|(ci, _)| own.contains_key(&(ci, *ti)))
        })
        .map(|(_, t)| t.name.as_str())
        .collect();
    if !unseeded.is_empty() {
        report.notes.push(format!(
            "the probe has no canary rows in {}: reads, updates and deletes there were tried against existing rows only, inserts not at all",
            unseeded.join(", ")
        ));
    }

    // Every runtime role a request runs as (the tenant roles, and the
    // credential-resolving role) with every canary's context, against the
    // rows of every other organization.
    for role in RUNTIME_ROLES {
        for (ci, c) in canaries.iter().enumerate() {
            begin_as(txn, c, role, None).await?;
            let who = format!("as {role} with the context of {}", c.label);
            for t in &tables {
                let key: Value = if t.owner_is_user {
                    c.user.into()
                } else {
                    c.org.into()
                };
                let others = format!("{} IS DISTINCT FROM $1", t.owner_column);
                attack(
                    txn,
                    t,
                    &others,
                    vec![key],
                    &who,
                    "other organizations",
                    &mut report,
                    false,
                )
                .await?;
            }
            for (ti, t) in tables.iter().enumerate() {
                for (oi, o) in canaries.iter().enumerate() {
                    if oi == ci {
                        continue;
                    }
                    if let Some(row) = own.get(&(oi, ti)) {
                        insert_copy(txn, t, row, &who, o.label, &mut report, false).await?;
                    }
                }
            }
        }
    }

    // An agency context limited to its first client, against its second.
    for (ci, c) in canaries.iter().enumerate() {
        let [first, _second, ..] = c.clients.as_slice() else {
            continue;
        };
        begin_as(txn, c, Kind::Agency.role(), Some(*first)).await?;
        let who = format!(
            "as app_agency with the context of {} limited to one client",
            c.label
        );
        for (ti, t) in tables.iter().enumerate() {
            let Some(col) = t.client_column else {
                continue;
            };
            let others = format!("org_id = $1 AND {col} IS DISTINCT FROM $2");
            attack(
                txn,
                t,
                &others,
                vec![c.org.into(), (*first).into()],
                &who,
                "its other clients",
                &mut report,
                true,
            )
            .await?;
            if let Some(row) = second_client.get(&(ci, ti)) {
                insert_copy(txn, t, row, &who, "its other client", &mut report, true).await?;
            }
        }
    }
    txn.execute_unprepared("RESET ROLE").await?;
    report.findings = aggregate(std::mem::take(&mut report.findings));
    report.notes.push(format!(
        "probe: {} canary organizations, {} tables, as {} with each canary's context",
        canaries.len(),
        tables.len(),
        RUNTIME_ROLES.join(", ")
    ));
    report.sort();
    Ok(report)
}

/// Switches to `role` with `c`'s context: every client (or only `client`),
/// writing and administering.
async fn begin_as(
    txn: &DatabaseTransaction,
    c: &Canary,
    role: &str,
    client: Option<Uuid>,
) -> Result<(), DbErr> {
    txn.execute_unprepared("RESET ROLE").await?;
    let clients: Vec<Uuid> = client.into_iter().collect();
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.begin_request($1, $2, $3, $4, $5, true, NULL, $6, true)",
        vec![
            role.into(),
            Some(c.org).into(),
            Some(c.user).into(),
            clients.into(),
            client.is_none().into(),
            REQUEST_ID.into(),
        ],
    ))
    .await
    .map(|_| ())
    .map_err(|e| {
        DbErr::Custom(format!(
            "the login role cannot switch to {role} with app.begin_request ({e}): run the probe as the gateway's login role or a superuser"
        ))
    })
}

/// Runs `f` in a savepoint that is always rolled back to, whether it
/// failed (so the transaction goes on) or succeeded (so a write that got
/// through, and whatever it cascaded to, does not change what the next
/// attempt finds).
async fn attempt<'a, T, F, Fut>(txn: &'a DatabaseTransaction, f: F) -> Result<T, DbErr>
where
    F: FnOnce(&'a DatabaseTransaction) -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    txn.execute_unprepared("SAVEPOINT strata_probe").await?;
    let result = f(txn).await;
    txn.execute_unprepared("ROLLBACK TO SAVEPOINT strata_probe; RELEASE SAVEPOINT strata_probe")
        .await?;
    result
}

/// One finding per check and table: the first context's message, and how
/// many other attempts found the same.
fn aggregate(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<(Finding, usize)> = Vec::new();
    for f in findings {
        match out
            .iter_mut()
            .find(|(o, _)| o.id == f.id && o.object == f.object)
        {
            Some((_, n)) => *n += 1,
            None => out.push((f, 0)),
        }
    }
    out.into_iter()
        .map(|(mut f, more)| {
            if more > 0 {
                f.message
                    .push_str(&format!(" (and {more} more attempts in other contexts)"));
            }
            f
        })
        .collect()
}

async fn first_text(
    txn: &DatabaseTransaction,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<String>, DbErr> {
    txn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?
    .map(|r| r.try_get_by_index::<String>(0))
    .transpose()
}

/// The SQLSTATE of a database error.
fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned())),
        _ => None,
    }
}

/// Whether `err` is the database refusing (no privilege, or a policy).
fn refused(err: &DbErr) -> bool {
    sqlstate(err).as_deref() == Some("42501")
}

fn leak(id: &'static str, table: &str, message: String) -> Finding {
    Finding::new(
        id,
        Severity::Critical,
        table,
        message,
        format!(
            "run `strata audit` without --probe for the cause, and compare {table}'s policies and grants with schema.sql"
        ),
    )
}

/// Reads, updates and deletes the rows `filter` selects; any row seen or
/// changed is a finding.
#[allow(clippy::too_many_arguments)]
async fn attack(
    txn: &DatabaseTransaction,
    t: &Table,
    filter: &str,
    values: Vec<Value>,
    who: &str,
    whose: &str,
    report: &mut Report,
    client_scope: bool,
) -> Result<(), DbErr> {
    let (read_id, write_id) = if client_scope {
        ("probe.client_read", "probe.client_write")
    } else {
        ("probe.read", "probe.write")
    };
    let seen = attempt(txn, |txn| {
        let sql = format!("SELECT count(*)::bigint FROM {} WHERE {filter}", t.sql);
        let values = values.clone();
        async move {
            txn.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
        }
    })
    .await;
    match seen {
        Ok(Some(n)) if n > 0 => report.findings.push(leak(
            read_id,
            &t.name,
            format!("{who}, {n} rows of {whose} are visible in {}", t.name),
        )),
        Ok(_) => {}
        Err(e) if refused(&e) => {}
        Err(e) => report
            .notes
            .push(format!("{}: reading {who} failed: {e}", t.name)),
    }
    for (verb, sql) in [
        (
            "updated",
            format!(
                "UPDATE {} SET {col} = {col} WHERE {filter}",
                t.sql,
                col = t.owner_column
            ),
        ),
        ("deleted", format!("DELETE FROM {} WHERE {filter}", t.sql)),
    ] {
        let changed = attempt(txn, |txn| {
            let values = values.clone();
            async move {
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    values,
                ))
                .await
                .map(|r| r.rows_affected())
            }
        })
        .await;
        match changed {
            Ok(n) if n > 0 => report.findings.push(leak(
                write_id,
                &t.name,
                format!("{who}, {n} rows of {whose} in {} could be {verb}", t.name),
            )),
            Ok(_) => {}
            Err(e) if refused(&e) => {}
            Err(e) => report.notes.push(format!(
                "{}: a write {who} failed otherwise than refused: {e}",
                t.name
            )),
        }
    }
    Ok(())
}

/// Inserts a copy of another tenant's (or client's) row; anything but a
/// refusal means the policies let it through.
async fn insert_copy(
    txn: &DatabaseTransaction,
    t: &Table,
    row: &str,
    who: &str,
    whose: &str,
    report: &mut Report,
    client_scope: bool,
) -> Result<(), DbErr> {
    let inserted = attempt(txn, |txn| {
        let sql = format!("INSERT INTO {t} SELECT ($1::{t}).*", t = t.sql);
        let row = row.to_owned();
        async move {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                vec![row.into()],
            ))
            .await
            .map(|_| ())
        }
    })
    .await;
    let id = if client_scope {
        "probe.client_write"
    } else {
        "probe.write"
    };
    match inserted {
        Ok(()) => report.findings.push(leak(
            id,
            &t.name,
            format!("{who}, a row of {whose} could be inserted into {}", t.name),
        )),
        Err(e) if refused(&e) => {}
        // Integrity errors come after the policies' check: the row passed
        // them.
        Err(e) if sqlstate(&e).is_some_and(|s| s.starts_with("23")) => report.findings.push(leak(
            id,
            &t.name,
            format!(
                "{who}, a row of {whose} passed the policies of {} (stopped only by a constraint)",
                t.name
            ),
        )),
        Err(e) => report.notes.push(format!(
            "{}: inserting a copy {who} failed otherwise than refused: {e}",
            t.name
        )),
    }
    Ok(())
}

/// The tables to probe, from the catalog.
async fn tables(txn: &DatabaseTransaction) -> Result<Vec<Table>, DbErr> {
    let rows = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                        EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped),
                        EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'client_id' AND NOT a.attisdropped)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE {} ORDER BY 1",
                super::our_tables_filter()
            ),
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get_by_index(0)?;
        let sql: String = r.try_get_by_index(1)?;
        let has_org: bool = r.try_get_by_index(2)?;
        let has_client: bool = r.try_get_by_index(3)?;
        let (owner_column, owner_is_user) = if has_org {
            ("org_id", false)
        } else if name == "public.organizations" {
            ("id", false)
        } else if name == "public.users" {
            ("id", true)
        } else {
            continue;
        };
        let client_column = match (name.starts_with("tenant_b."), has_client) {
            (true, true) => Some("client_id"),
            (true, false) if name == "tenant_b.workspace_entities" => Some("id"),
            _ => None,
        };
        out.push(Table {
            name,
            sql,
            owner_column,
            owner_is_user,
            client_column,
        });
    }
    Ok(out)
}

/// Writes `c`'s rows as requests would: its user as `app_auth`, the rest
/// as its organization type's runtime role with its own context. Returns
/// the tables written.
async fn seed(txn: &DatabaseTransaction, c: &Canary) -> Result<BTreeSet<&'static str>, DbErr> {
    let mut written = BTreeSet::new();
    txn.execute_unprepared("RESET ROLE").await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.begin_request('app_auth', NULL, $1, '{}', false, false, NULL, $2, false)",
        vec![Some(c.user).into(), REQUEST_ID.into()],
    ))
    .await?;
    insert(
        txn,
        "INSERT INTO public.users (id) VALUES ($1)",
        vec![c.user.into()],
    )
    .await?;
    written.insert("public.users");
    begin_as(txn, c, c.kind.role(), None).await?;
    let org: Value = c.org.into();
    let id = || -> Value { Uuid::new_v4().into() };
    let slug = format!(
        "strata-audit-probe-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let t = c.kind.type_name();
    let export = Uuid::new_v4();
    let mut rows: Vec<(&'static str, String, Vec<Value>)> = vec![
        (
            "public.organizations",
            format!("INSERT INTO public.organizations (id, type, name, slug) VALUES ($1, '{t}', 'strata audit probe', $2)"),
            vec![org.clone(), slug.into()],
        ),
        (
            "public.memberships",
            format!("INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES ($1, $2, '{t}', 'OWNER')"),
            vec![org.clone(), c.user.into()],
        ),
        (
            "public.api_keys",
            format!("INSERT INTO public.api_keys (org_id, id, org_type, name, prefix, key_hash) VALUES ($1, $2, '{t}', 'probe', 'strata_probe', $3)"),
            vec![org.clone(), id(), Uuid::new_v4().simple().to_string().into()],
        ),
        (
            "public.invitations",
            format!("INSERT INTO public.invitations (org_id, id, org_type, email, role, expires_at) VALUES ($1, $2, '{t}', 'probe-' || $2 || '@strata-audit.invalid', 'VIEWER', now() + interval '1 day')"),
            vec![org.clone(), id()],
        ),
        (
            "public.audit_log",
            "INSERT INTO public.audit_log (org_id, id, operation, target_type, request_id) VALUES ($1, $2, 'auditProbe', 'Probe', 'strata-audit-probe')".into(),
            vec![org.clone(), id()],
        ),
        (
            "public.token_usage",
            "INSERT INTO public.token_usage (org_id, month) VALUES ($1, date_trunc('month', now())::date)".into(),
            vec![org.clone()],
        ),
        (
            "public.data_exports",
            format!("INSERT INTO public.data_exports (org_id, id, org_type, status, expires_at) VALUES ($1, $2, '{t}', 'READY', now() + interval '1 day')"),
            vec![org.clone(), export.into()],
        ),
        (
            "public.data_export_chunks",
            format!("INSERT INTO public.data_export_chunks (org_id, export_id, seq, org_type, data) VALUES ($1, $2, 0, '{t}', '\\x7b7d0a'::bytea)"),
            vec![org.clone(), export.into()],
        ),
    ];
    match c.kind {
        Kind::Sme => {
            let campaign = Uuid::new_v4();
            rows.extend([
                (
                    "public.campaigns",
                    "INSERT INTO public.campaigns (org_id, id, name) VALUES ($1, $2, 'probe')".to_owned(),
                    vec![org.clone(), campaign.into()],
                ),
                (
                    "public.brand_guidelines",
                    "INSERT INTO public.brand_guidelines (org_id) VALUES ($1)".to_owned(),
                    vec![org.clone()],
                ),
                (
                    "public.personas",
                    "INSERT INTO public.personas (org_id, id, name) VALUES ($1, $2, 'probe')".to_owned(),
                    vec![org.clone(), id()],
                ),
                (
                    "public.agent_outputs",
                    "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent) VALUES ($1, $2, $3, 'BUSINESS_STRATEGY')".to_owned(),
                    vec![org.clone(), id(), campaign.into()],
                ),
            ]);
        }
        Kind::Agency => {
            for (n, client) in c.clients.iter().enumerate() {
                let client: Value = (*client).into();
                let campaign = Uuid::new_v4();
                rows.extend([
                    (
                        "tenant_b.workspace_entities",
                        format!("INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug) VALUES ($1, $2, 'probe', 'probe-{n}')"),
                        vec![org.clone(), client.clone()],
                    ),
                    (
                        "tenant_b.client_assignments",
                        "INSERT INTO tenant_b.client_assignments (org_id, client_id, user_id) VALUES ($1, $2, $3)".to_owned(),
                        vec![org.clone(), client.clone(), c.user.into()],
                    ),
                    (
                        "tenant_b.entity_data",
                        "INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name) VALUES ($1, $2, $3, 'PERSONA', 'probe')".to_owned(),
                        vec![org.clone(), id(), client.clone()],
                    ),
                    (
                        "tenant_b.campaigns",
                        "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name) VALUES ($1, $2, $3, 'probe')".to_owned(),
                        vec![org.clone(), campaign.into(), client.clone()],
                    ),
                    (
                        "tenant_b.outputs",
                        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent) VALUES ($1, $2, $3, $4, 'BUSINESS_STRATEGY')".to_owned(),
                        vec![org.clone(), id(), client.clone(), campaign.into()],
                    ),
                ]);
            }
        }
    }
    for (table, sql, values) in rows {
        insert(txn, &sql, values)
            .await
            .map_err(|e| DbErr::Custom(format!("{table}: {e}")))?;
        written.insert(table);
    }
    Ok(written)
}

async fn insert(txn: &DatabaseTransaction, sql: &str, values: Vec<Value>) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map(|_| ())
}
