//! Drift between the application's checks and the database's: a statement
//! of a request transaction that the database refused with SQLSTATE 42501
//! (a row-level security policy or a missing grant) after the application
//! layer let it through. The two layers were meant to agree, so each
//! refusal is logged as an error with the operation, the table and the
//! tenant, and counted in `strata_isolation_drift_total{operation,table}`;
//! the request still fails as an internal error (`map_db_err`).
//!
//! The same for the quieter refusal: an `UPDATE` or `DELETE` of a row the
//! repository has just read in the same transaction that changed no row
//! while the row is still visible (the write policy filtered what the read
//! policy shows). The repositories report it through [`filtered`]
//! (`crate::repo::wrote_one`).

use sea_orm::{DbErr, RuntimeErr};
use strata_domain::TenantContext;

/// The statement kind and table of a statement, read from its SQL before
/// it runs (only writes name their table; reads are `select`).
#[derive(Debug)]
pub(crate) struct Statement {
    operation: &'static str,
    table: Option<String>,
}

impl Statement {
    /// Reads `sql`'s first keyword and, for a write, its table.
    pub(crate) fn of(sql: &str) -> Self {
        let sql = sql.trim_start();
        let word = |s: &str, w: &str| {
            s.get(..w.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(w))
        };
        let (operation, rest) = if word(sql, "INSERT INTO ") {
            ("insert", Some(&sql[12..]))
        } else if word(sql, "UPDATE ") {
            ("update", Some(&sql[7..]))
        } else if word(sql, "DELETE FROM ") {
            ("delete", Some(&sql[12..]))
        } else if word(sql, "SELECT") || word(sql, "WITH") {
            ("select", None)
        } else {
            ("other", None)
        };
        let table = rest.map(|rest| {
            rest.trim_start()
                .split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap_or_default()
                .replace('"', "")
        });
        Self { operation, table }
    }

    /// A span for the statement (exported as a trace's database span when
    /// traces are on; `TRACE` level, so free otherwise): `INSERT
    /// public.campaigns`, the statement text with its literals replaced by
    /// `?` (values are bound parameters anyway).
    pub(crate) fn span(&self, sql: &str) -> tracing::Span {
        let operation = match self.operation {
            "insert" => "INSERT",
            "update" => "UPDATE",
            "delete" => "DELETE",
            "select" => "SELECT",
            _ => "OTHER",
        };
        tracing::trace_span!(
            "db.statement",
            otel.name = %format_args!("{operation}{}{}", if self.table.is_some() { " " } else { "" }, self.table.as_deref().unwrap_or("")),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = operation,
            db.collection.name = self.table.as_deref(),
            db.query.text = %without_literals(sql),
        )
    }

    /// Counts and logs `err` if it is the database refusing this
    /// statement for `ctx`.
    pub(crate) fn check(&self, err: &DbErr, ctx: &TenantContext) {
        let Some(message) = refusal(err) else {
            return;
        };
        let table = self
            .table
            .clone()
            .or_else(|| table_in(&message))
            .unwrap_or_else(|| "unknown".to_owned());
        record(ctx, self.operation, table, &message);
    }
}

/// Counts and logs a write of one visible row that the database filtered
/// to none for `ctx`, and returns the request's internal error.
pub(crate) fn filtered(
    ctx: &TenantContext,
    operation: &'static str,
    table: String,
) -> strata_domain::DomainError {
    let message = format!("{operation} of a visible row of {table} changed no row");
    record(ctx, operation, table, &message);
    strata_domain::DomainError::Internal(Box::new(std::io::Error::other(message)))
}

fn record(ctx: &TenantContext, operation: &'static str, table: String, message: &str) {
    tracing::error!(
        drift.operation = operation,
        drift.table = %table,
        tenant.org_id = %ctx.org_id(),
        tenant.org_type = ctx.org_type().as_str(),
        request.id = ctx.request_id(),
        error = %message,
        "the database refused what the application allowed (isolation drift)"
    );
    metrics::counter!(
        "strata_isolation_drift_total",
        "operation" => operation,
        "table" => table
    )
    .increment(1);
}

/// `sql` with its string and number literals replaced by `?`.
pub(crate) fn without_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut prev_ident = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A string literal ('' inside is a quote): skip to its end.
            while let Some(n) = chars.next() {
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            out.push('?');
            prev_ident = false;
        } else if c.is_ascii_digit() && !prev_ident {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
            {
                chars.next();
            }
            out.push('?');
            prev_ident = false;
        } else {
            prev_ident = c.is_alphanumeric() || c == '_' || c == '$' || c == '"';
            out.push(c);
        }
    }
    out
}

/// The database's message when `err` is SQLSTATE 42501.
fn refusal(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            let db = e.as_database_error()?;
            let (code, _) = crate::error::database_error_parts(err);
            (code.as_deref() == Some("42501")).then(|| db.message().to_owned())
        }
        _ => None,
    }
}

/// The table a refusal's message names (`... for table "campaigns"`,
/// `permission denied for table campaigns`).
fn table_in(message: &str) -> Option<String> {
    let (_, rest) = message.rsplit_once("for table ")?;
    let name = rest.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_name_their_operation_and_table() {
        let s =
            Statement::of(r#"INSERT INTO "public"."campaigns" ("org_id", "id") VALUES ($1, $2)"#);
        assert_eq!(
            (s.operation, s.table.as_deref()),
            ("insert", Some("public.campaigns"))
        );
        let s = Statement::of(r#"UPDATE "tenant_b"."outputs" SET "status" = $1"#);
        assert_eq!(
            (s.operation, s.table.as_deref()),
            ("update", Some("tenant_b.outputs"))
        );
        let s = Statement::of("delete from tenant_b.campaigns where id = $1");
        assert_eq!(
            (s.operation, s.table.as_deref()),
            ("delete", Some("tenant_b.campaigns"))
        );
        let s = Statement::of("  SELECT 1");
        assert_eq!((s.operation, s.table), ("select", None));
        let s = Statement::of("SAVEPOINT x");
        assert_eq!(s.operation, "other");
    }

    #[test]
    fn statement_text_in_traces_has_no_literals() {
        assert_eq!(
            without_literals("SELECT * FROM t WHERE a = 'x''y' AND b = 42 AND c = $1 LIMIT 21"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = $1 LIMIT ?"
        );
        assert_eq!(
            without_literals(r#"SELECT "col1" FROM t2 WHERE x1 = 1.5"#),
            r#"SELECT "col1" FROM t2 WHERE x1 = ?"#
        );
    }

    #[test]
    fn the_refused_table_is_read_from_the_message_otherwise() {
        assert_eq!(
            table_in(r#"new row violates row-level security policy for table "campaigns""#)
                .as_deref(),
            Some("campaigns")
        );
        assert_eq!(
            table_in("permission denied for table personas").as_deref(),
            Some("personas")
        );
        assert_eq!(table_in("permission denied for schema tenant_b"), None);
    }
}
