//! The report: one row per measurement, a summary per target and shape,
//! and the ratios against the performance targets.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};

use crate::layout::Layout;
use crate::load::Machine;

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `strata`, `postgraphile` or `pgbench`.
    pub target: String,
    /// `rls-on`, `rls-off`, `scaling` or `raw-sql`.
    pub mode: String,
    /// Shape letter.
    pub shape: String,
    /// Round (targets alternate within a round).
    pub round: u32,
    /// Organizations in the database.
    pub orgs: u64,
    /// Requests completed.
    pub requests: u64,
    /// Requests the server counted in the same interval.
    pub server_requests: Option<u64>,
    /// Requests per second.
    pub rps: f64,
    /// Median latency (pgbench: mean).
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Answers with a status >= 400.
    pub non_2xx: u64,
    /// Socket errors and timeouts (pgbench: failed transactions).
    pub socket_errors: u64,
    /// Answers with GraphQL errors (Strata's own counter).
    pub graphql_errors: Option<u64>,
    /// SQL statements per request.
    pub sql_per_request: Option<f64>,
    /// CPU of the server process per request.
    pub server_cpu_ms_per_request: Option<f64>,
    /// CPU of all PostgreSQL processes per request.
    pub pg_cpu_ms_per_request: f64,
    /// Peak resident set size of the server process.
    pub server_peak_rss_mib: Option<f64>,
}

impl Row {
    /// A progress line.
    pub fn line(&self) -> String {
        format!(
            "{:<12} {:<8} ({}) {:>7} orgs: {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  requests {} (server {})  sql/req {}",
            self.target,
            self.mode,
            self.shape,
            self.orgs,
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.errors(),
            self.requests,
            self.server_requests
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            self.sql_per_request
                .map_or_else(|| "-".to_owned(), |n| format!("{n:.2}"))
        )
    }

    fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors + self.graphql_errors.unwrap_or(0)
    }
}

/// Mean of a row group.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    target: String,
    mode: String,
    shape: String,
    orgs: u64,
    runs: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    sql_per_request: Option<f64>,
    server_cpu_ms_per_request: Option<f64>,
    pg_cpu_ms_per_request: f64,
    server_peak_rss_mib: Option<f64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub config: Value,
    /// Every measurement.
    pub rows: Vec<Row>,
    /// SQL statements of one request at two page sizes.
    pub statements_by_page_size: Vec<Value>,
    /// The SQL replayed by pgbench, per shape.
    pub captured_sql: Vec<Value>,
    /// Data exports measured (`--export-rows`).
    pub exports: Vec<Value>,
    /// Anything skipped or failed.
    pub notes: Vec<String>,
    #[serde(skip)]
    orgs: u64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn mean_opt(v: &[Option<f64>]) -> Option<f64> {
    let some: Vec<f64> = v.iter().flatten().copied().collect();
    (!some.is_empty()).then(|| mean(&some))
}

impl Report {
    /// An empty report.
    pub fn new(args: &crate::Args, machine: Machine, layout: Layout, transport: &str) -> Self {
        Self {
            machine,
            config: json!({
                "pg_transport": transport,
                "orgs": layout.orgs,
                "campaigns": layout.campaigns(),
                "outputs": layout.outputs(),
                "connections": args.connections,
                "threads": args.threads,
                "duration_s": args.duration.as_secs_f64(),
                "warmup_s": args.warmup.as_secs_f64(),
                "rounds": args.rounds,
                "pool": args.pool,
                "tenants_per_kind": args.tenants,
                "peer": args.peer,
                "rls_off": args.rls_off,
                "raw_sql": args.raw_sql,
                "tenant_scaling": args.tenant_scaling,
                "export_rows": args.export_rows,
            }),
            rows: Vec::new(),
            statements_by_page_size: Vec::new(),
            captured_sql: Vec::new(),
            exports: Vec::new(),
            notes: Vec::new(),
            orgs: layout.orgs,
        }
    }

    /// Rows averaged per (target, mode, shape, orgs).
    pub fn summaries(&self) -> Vec<Summary> {
        let mut groups: BTreeMap<(String, String, String, u64), Vec<&Row>> = BTreeMap::new();
        for r in &self.rows {
            groups
                .entry((r.shape.clone(), r.mode.clone(), r.target.clone(), r.orgs))
                .or_default()
                .push(r);
        }
        groups
            .into_iter()
            .map(|((shape, mode, target, orgs), rows)| {
                let f = |g: fn(&Row) -> f64| mean(&rows.iter().map(|r| g(r)).collect::<Vec<_>>());
                let o = |g: fn(&Row) -> Option<f64>| {
                    mean_opt(&rows.iter().map(|r| g(r)).collect::<Vec<_>>())
                };
                Summary {
                    target,
                    mode,
                    shape,
                    orgs,
                    runs: rows.len(),
                    rps: f(|r| r.rps),
                    p50_ms: f(|r| r.p50_ms),
                    p99_ms: f(|r| r.p99_ms),
                    errors: rows.iter().map(|r| r.errors()).sum(),
                    sql_per_request: o(|r| r.sql_per_request),
                    server_cpu_ms_per_request: o(|r| r.server_cpu_ms_per_request),
                    pg_cpu_ms_per_request: f(|r| r.pg_cpu_ms_per_request),
                    server_peak_rss_mib: rows
                        .iter()
                        .filter_map(|r| r.server_peak_rss_mib)
                        .reduce(f64::max),
                }
            })
            .collect()
    }

    fn find(&self, s: &[Summary], target: &str, mode: &str, shape: &str) -> Option<Summary> {
        s.iter()
            .find(|x| {
                x.target == target && x.mode == mode && x.shape == shape && x.orgs == self.orgs
            })
            .cloned()
    }

    /// Ratios against the targets: (target, shape, measured, goal, met).
    pub fn targets(&self) -> Vec<Value> {
        let s = self.summaries();
        let mut out = Vec::new();
        let mut push = |name: &str, shape: &str, ratio: f64, goal: &str, met: bool| {
            out.push(json!({
                "target": name, "shape": shape, "measured": (ratio * 1000.0).round() / 1000.0,
                "goal": goal, "met": met,
            }));
        };
        for shape in ["a", "b", "c", "d"] {
            let strata = self.find(&s, "strata", "rls-on", shape);
            if let (Some(a), Some(b)) = (&strata, self.find(&s, "postgraphile", "rls-on", shape))
                && b.rps > 0.0
            {
                let r = a.rps / b.rps;
                push("throughput / PostGraphile", shape, r, ">= 2.0", r >= 2.0);
                if let (Some(x), Some(y)) =
                    (a.server_cpu_ms_per_request, b.server_cpu_ms_per_request)
                    && y > 0.0
                {
                    let r = x / y;
                    push(
                        "gateway CPU / PostGraphile's",
                        shape,
                        r,
                        "<= 0.333",
                        r <= 1.0 / 3.0,
                    );
                }
            }
            if let (Some(a), Some(b)) = (&strata, self.find(&s, "pgbench", "raw-sql", shape))
                && b.rps > 0.0
            {
                let r = a.rps / b.rps;
                let goal = if shape == "b" { 0.45 } else { 0.60 };
                push(
                    "throughput / raw SQL",
                    shape,
                    r,
                    &format!(">= {goal:.2}"),
                    r >= goal,
                );
            }
            if let (Some(a), Some(b)) = (&strata, self.find(&s, "strata", "rls-off", shape))
                && b.rps > 0.0
            {
                let r = a.rps / b.rps;
                push("RLS on / off throughput", shape, r, ">= 0.90", r >= 0.9);
            }
            let scaling: Vec<&Summary> = s
                .iter()
                .filter(|x| x.mode == "scaling" && x.shape == shape)
                .collect();
            if let (Some(small), Some(large)) = (
                scaling.iter().min_by_key(|x| x.orgs),
                scaling.iter().max_by_key(|x| x.orgs),
            ) && small.orgs != large.orgs
                && small.p50_ms > 0.0
            {
                let r = large.p50_ms / small.p50_ms;
                push(
                    &format!("p50 {} / {} orgs", large.orgs, small.orgs),
                    shape,
                    r,
                    "<= 1.2",
                    r <= 1.2,
                );
            }
            if shape == "b"
                && let Some(sql) = strata.as_ref().and_then(|a| a.sql_per_request)
            {
                push("SQL statements per request", shape, sql, "<= 4", sql <= 4.0);
            }
        }
        for shape in ["a", "b", "d"] {
            let counts: Vec<f64> = self
                .statements_by_page_size
                .iter()
                .filter(|v| v["shape"] == shape)
                .filter_map(|v| v["statements"].as_f64())
                .collect();
            if counts.len() == 2 {
                push(
                    "statements first=50 / first=5",
                    shape,
                    counts[1] / counts[0].max(1.0),
                    "== 1",
                    counts[0] == counts[1],
                );
            }
        }
        let rss = self
            .rows
            .iter()
            .filter(|r| r.target == "strata")
            .filter_map(|r| r.server_peak_rss_mib)
            .reduce(f64::max);
        if let Some(rss) = rss {
            push("gateway peak RSS (MiB)", "all", rss, "<= 100", rss <= 100.0);
        }
        out
    }

    /// Prints the summary and the targets.
    pub fn print(&self) {
        println!(
            "\npostgres transport: {}",
            self.config["pg_transport"].as_str().unwrap_or("?")
        );
        println!(
            "\n{:<12} {:<8} {:<5} {:>7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>8}",
            "target",
            "mode",
            "shape",
            "orgs",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "sql/req",
            "srv cpu ms",
            "pg cpu ms",
            "rss MiB"
        );
        let opt = |v: Option<f64>, p: usize| match v {
            Some(v) => format!("{v:.p$}"),
            None => "-".into(),
        };
        for s in self.summaries() {
            println!(
                "{:<12} {:<8} {:<5} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>8} {:>10} {:>10.3} {:>8}",
                s.target,
                s.mode,
                s.shape,
                s.orgs,
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.errors,
                opt(s.sql_per_request, 2),
                opt(s.server_cpu_ms_per_request, 3),
                s.pg_cpu_ms_per_request,
                opt(s.server_peak_rss_mib, 1)
            );
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!(
                "\n{:<36} {:<5} {:>9} {:>9}  met",
                "target", "shape", "measured", "goal"
            );
            for t in targets {
                println!(
                    "{:<36} {:<5} {:>9} {:>9}  {}",
                    t["target"].as_str().unwrap_or(""),
                    t["shape"].as_str().unwrap_or(""),
                    t["measured"],
                    t["goal"].as_str().unwrap_or(""),
                    if t["met"] == true { "yes" } else { "NO" }
                );
            }
        }
        println!();
        for shape in ["a", "b", "c", "d", "e"] {
            if let Some(s) = crate::shapes::Shape::parse(shape) {
                println!("({shape}) {}", s.describe());
            }
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        crate::export::print(&self.exports);
    }

    /// Writes the JSON report.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut v = serde_json::to_value(self)?;
        v["summary"] = serde_json::to_value(self.summaries())?;
        v["targets"] = Value::Array(self.targets());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
        Ok(())
    }
}
