//! The raw-SQL limit: the statements the gateway sends for one request,
//! captured from PostgreSQL's statement log, replayed by pgbench in the same
//! transaction (BEGIN, context statement, queries, COMMIT) for many tenants.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::layout;

/// One logged statement with its parameters.
#[derive(Clone, Debug)]
struct Logged {
    pid: String,
    sql: String,
    params: Vec<Option<String>>,
}

/// Reads PostgreSQL's stderr log from byte `from`: statements logged by
/// `log_statement = all`, with their parameters.
fn parse_log(text: &str) -> Vec<Logged> {
    // Each entry starts with "<timestamp> [<pid>] <LEVEL>:  "; continuation
    // lines start with a tab.
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(cont) = line.strip_prefix('\t') {
            if let Some(last) = entries.last_mut() {
                last.2.push('\n');
                last.2.push_str(cont);
            }
            continue;
        }
        let Some(open) = line.find(" [") else {
            continue;
        };
        let Some(close) = line[open..].find("] ").map(|c| c + open) else {
            continue;
        };
        let pid = line[open + 2..close].to_owned();
        let rest = &line[close + 2..];
        let Some((level, msg)) = rest.split_once(":  ") else {
            continue;
        };
        entries.push((pid, level.to_owned(), msg.to_owned()));
    }
    let mut out: Vec<Logged> = Vec::new();
    for (pid, level, msg) in entries {
        if level == "DETAIL" {
            if let Some(p) = msg.strip_prefix("parameters: ")
                && let Some(last) = out.iter_mut().rev().find(|l| l.pid == pid)
            {
                last.params = parse_params(p);
            }
            continue;
        }
        if level != "LOG" {
            continue;
        }
        let sql = if let Some(s) = msg.strip_prefix("statement: ") {
            s
        } else if let Some(s) = msg.strip_prefix("execute ") {
            match s.split_once(": ") {
                Some((_, s)) => s,
                None => continue,
            }
        } else {
            continue;
        };
        out.push(Logged {
            pid,
            sql: sql.to_owned(),
            params: Vec::new(),
        });
    }
    out
}

/// Parses "$1 = 'a', $2 = NULL, ...".
fn parse_params(text: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some(eq) = text[i..].find(" = ") else {
            break;
        };
        i += eq + 3;
        if text[i..].starts_with("NULL") {
            out.push(None);
            i += 4;
        } else if b.get(i) == Some(&b'\'') {
            let mut v = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        v.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch = text[i..].chars().next().unwrap_or(' ');
                v.push(ch);
                i += ch.len_utf8();
            }
            out.push(Some(v));
        } else {
            break;
        }
        // Skip ", ".
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
    }
    out
}

/// Replaces `$n` placeholders outside quotes with literals.
fn inline(sql: &str, params: &[Option<String>]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
            continue;
        }
        if c == '$' && !quoted {
            let mut digits = String::new();
            while let Some((_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    digits.push(*d);
                    chars.next();
                } else {
                    break;
                }
            }
            match digits.parse::<usize>().ok().and_then(|n| params.get(n - 1)) {
                Some(Some(v)) => out.push_str(&crate::seed::literal(v)),
                Some(None) => out.push_str("NULL"),
                None => {
                    out.push('$');
                    out.push_str(&digits);
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Splits a simple-protocol message into its statements, at semicolons
/// outside string literals (`'...'`, with backslash escapes in `E'...'`).
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if c == '\'' {
            let escapes = prev == 'E' || prev == 'e';
            cur.push(c);
            while let Some(q) = chars.next() {
                cur.push(q);
                if escapes && q == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if q == '\'' {
                    if chars.peek() == Some(&'\'') {
                        if let Some(n) = chars.next() {
                            cur.push(n);
                        }
                    } else {
                        break;
                    }
                }
            }
            prev = '\'';
            continue;
        }
        if c == ';' {
            let stmt = cur.trim();
            if !stmt.is_empty() {
                out.push(stmt.to_owned());
            }
            cur.clear();
        } else {
            cur.push(c);
        }
        prev = c;
    }
    let stmt = cur.trim();
    if !stmt.is_empty() {
        out.push(stmt.to_owned());
    }
    out
}

/// The transaction the gateway ran for request `request_id`, as literal
/// SQL: one entry per round trip (the opening message, which holds BEGIN
/// and the context's `SET LOCAL`s, then each query, then COMMIT or
/// ROLLBACK), each with its statements. The credential transaction
/// (`app_auth`) is skipped.
pub fn transaction(log: &str, request_id: &str) -> Result<Vec<Vec<String>>> {
    let logged = parse_log(log);
    let marker = format!("app.request_id = E'{request_id}'");
    let start = logged
        .iter()
        .position(|l| {
            l.sql.trim_start().to_ascii_uppercase().starts_with("BEGIN")
                && l.sql.contains(&marker)
                && (l.sql.contains("ROLE app_sme") || l.sql.contains("ROLE app_agency"))
        })
        .ok_or_else(|| anyhow!("request {request_id} not found in the statement log"))?;
    let pid = logged[start].pid.clone();
    let mut out = Vec::new();
    for l in logged[start..].iter().filter(|l| l.pid == pid) {
        let sql = inline(l.sql.trim(), &l.params);
        let statements = split_statements(&sql);
        let end = statements.last().is_some_and(|s| {
            let up = s.to_ascii_uppercase();
            up.starts_with("COMMIT") || up.starts_with("ROLLBACK") || up.starts_with("END")
        });
        out.push(statements);
        if end {
            return Ok(out);
        }
    }
    bail!("request {request_id}: no COMMIT or ROLLBACK in the statement log")
}

/// Rewrites the generated ids of tenant `from` into those of tenant `to`.
pub fn rebase_text(text: &str, from: u64, to: u64) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && looks_like_uuid(&b[i..i + 36]) {
            let s = &text[i..i + 36];
            match layout::rebase(s, from, to) {
                Some(u) => out.push_str(&u.to_string()),
                None => out.push_str(s),
            }
            i += 36;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn looks_like_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Writes one pgbench script per tenant and returns their paths. A round
/// trip of several statements is sent as a pipeline (one message, one
/// Sync), as the gateway sends it.
pub fn write_scripts(
    dir: &Path,
    shape: &str,
    round_trips: &[Vec<String>],
    sample: u64,
    tenants: &[u64],
) -> Result<Vec<PathBuf>> {
    let mut text = String::new();
    for statements in round_trips {
        let pipelined = statements.len() > 1;
        if pipelined {
            text.push_str("\\startpipeline\n");
        }
        for s in statements {
            text.push_str(s);
            text.push_str(";\n");
        }
        if pipelined {
            text.push_str("\\endpipeline\n");
        }
    }
    let mut paths = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let path = dir.join(format!("raw-{shape}-{i}.sql"));
        std::fs::write(&path, rebase_text(&text, sample, *t))?;
        paths.push(path);
    }
    Ok(paths)
}

/// What pgbench reported.
#[derive(Clone, Debug, Default)]
pub struct Pgbench {
    /// Transactions per second.
    pub tps: f64,
    /// Mean latency in ms.
    pub latency_ms: f64,
    /// Transactions run.
    pub transactions: u64,
    /// Failed transactions.
    pub failed: u64,
}

/// Runs pgbench with `scripts` (chosen at random per transaction).
pub async fn pgbench(
    url: &str,
    scripts: &[PathBuf],
    clients: u32,
    threads: u32,
    duration: Duration,
) -> Result<Pgbench> {
    let mut cmd = tokio::process::Command::new("pgbench");
    cmd.arg("-n")
        .arg("-M")
        .arg("prepared")
        .arg(format!("-c{clients}"))
        .arg(format!("-j{threads}"))
        .arg(format!("-T{}", duration.as_secs().max(1)));
    for s in scripts {
        cmd.arg("-f").arg(s);
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .await
        .context("cannot run pgbench (install postgresql-contrib or postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "pgbench failed: {}",
            stderr.lines().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    let mut r = Pgbench::default();
    for line in stdout.lines() {
        let line = line.trim();
        let num = |s: &str| {
            s.split_whitespace()
                .find_map(|w| w.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if let Some(v) = line.strip_prefix("tps = ") {
            r.tps = num(v);
        } else if let Some(v) = line.strip_prefix("latency average = ") {
            r.latency_ms = num(v);
        } else if let Some(v) = line.strip_prefix("number of transactions actually processed: ") {
            r.transactions = v.split('/').next().map(num).unwrap_or(0.0) as u64;
        } else if let Some(v) = line.strip_prefix("number of failed transactions: ") {
            r.failed = num(v) as u64;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_the_request_transaction() {
        let log = "\
2026-01-01 00:00:00.000 UTC [7] LOG:  statement: BEGIN
2026-01-01 00:00:00.000 UTC [7] LOG:  execute sqlx_s_1: SELECT app.begin_request($1, $2, $3, $4, $5, $6, $7, $8)
2026-01-01 00:00:00.000 UTC [7] DETAIL:  parameters: $1 = 'app_auth', $2 = NULL, $3 = 'u', $4 = '{}', $5 = 'f', $6 = 'f', $7 = NULL, $8 = 'r1'
2026-01-01 00:00:00.000 UTC [7] LOG:  statement: COMMIT
2026-01-01 00:00:00.000 UTC [8] LOG:  statement: BEGIN READ ONLY; SET LOCAL app.org_id = E'o;x'; SET LOCAL app.request_id = E'r1'; SET LOCAL ROLE app_sme
2026-01-01 00:00:00.000 UTC [8] LOG:  execute sqlx_s_2: SELECT name
\tFROM t WHERE a = $1 AND b = 'it''s'
2026-01-01 00:00:00.000 UTC [8] DETAIL:  parameters: $1 = 'x''y'
2026-01-01 00:00:00.000 UTC [8] LOG:  statement: ROLLBACK
";
        let tx = transaction(log, "r1").unwrap_or_default();
        assert_eq!(tx.len(), 3);
        assert_eq!(
            tx[0],
            [
                "BEGIN READ ONLY",
                "SET LOCAL app.org_id = E'o;x'",
                "SET LOCAL app.request_id = E'r1'",
                "SET LOCAL ROLE app_sme"
            ]
        );
        assert_eq!(
            tx[1],
            ["SELECT name\nFROM t WHERE a = 'x''y' AND b = 'it''s'"]
        );
        assert_eq!(tx[2], ["ROLLBACK"]);
    }

    #[test]
    fn splits_messages_outside_literals_only() {
        assert_eq!(
            split_statements(r"SET a = E'x\';y'; SET b = 'p;''q'"),
            [r"SET a = E'x\';y'", "SET b = 'p;''q'"]
        );
    }

    #[test]
    fn rebases_generated_ids_only() {
        let a = layout::id(layout::CAMPAIGN, 2 * layout::CAMPAIGN_STRIDE + 5);
        let other = "0190aaaa-0000-7000-8000-000000000001";
        let text = format!("x = '{a}' AND y = '{other}'");
        let out = rebase_text(&text, 2, 4);
        let b = layout::id(layout::CAMPAIGN, 4 * layout::CAMPAIGN_STRIDE + 5);
        assert_eq!(out, format!("x = '{b}' AND y = '{other}'"));
    }
}
