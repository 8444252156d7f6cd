//! The metrics at `/metrics` that answer operators' questions: which
//! operation of which organization type fails or is slow, how the pool
//! does, which tenants cause the load. Every metric is listed in
//! `docs/OPERATIONS.md`.
//!
//! Labels stay bounded: operation names are kept for the first
//! [`MAX_OPERATION_NAMES`] names seen (later ones count as `other`), and
//! tenants get a series of their own only while they are among the
//! `--metrics-top-tenants` heaviest, the rest summed in one `other`
//! series ([`TopTenants`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use strata_domain::OrgId;
use strata_persistence::PoolStatus;

/// Distinct operation names given a label of their own, per process.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Tenants remembered at most; beyond, new ones count under `other`.
const MAX_TENANTS: usize = 100_000;

/// Describes the metrics of the recorder (their `# HELP` lines).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "strata_graphql_requests_total",
        "GraphQL operations over HTTP by outcome"
    );
    describe_histogram!(
        "strata_graphql_request_duration_seconds",
        "time per /graphql HTTP request"
    );
    describe_counter!(
        "strata_graphql_operations_total",
        "GraphQL operations by operation name, organization type and outcome"
    );
    describe_histogram!(
        "strata_graphql_operation_duration_seconds",
        "time per GraphQL operation by operation name and organization type"
    );
    describe_gauge!(
        "strata_db_pool_connections",
        "open database connections by state (in_use, idle)"
    );
    describe_gauge!("strata_db_pool_max_connections", "the pool's upper bound");
    describe_gauge!(
        "strata_db_pool_waiting",
        "request transactions waiting for a connection"
    );
    describe_histogram!(
        "strata_db_pool_acquire_seconds",
        "time a request transaction waited for a connection"
    );
    describe_counter!(
        "strata_isolation_drift_total",
        "statements the database refused (42501) after the application allowed them"
    );
    describe_counter!(
        "strata_agent_runs_total",
        "agent runs ended, by agent kind and final status"
    );
    describe_counter!(
        "strata_agent_tokens_total",
        "model tokens of ended agent runs, by agent kind and direction (in, out)"
    );
    describe_gauge!(
        "strata_agent_runs_in_flight",
        "agent runs this process holds, queued or executing"
    );
    describe_counter!(
        "strata_rate_limited_total",
        "requests and subscriptions refused by a rate limit, by scope and transport"
    );
    describe_counter!(
        "strata_auth_failures_total",
        "refused credentials by reason class and transport"
    );
    describe_counter!(
        "strata_sql_statements_total",
        "statements sent in request transactions"
    );
    describe_counter!(
        "strata_rate_limit_backend_errors_total",
        "times Redis did not answer and the local buckets decided"
    );
    describe_counter!(
        "strata_auth_failures_blocked_total",
        "times an address was blocked for its failed authentications"
    );
    describe_counter!("strata_ws_refused_total", "WebSockets refused, by reason");
    describe_counter!(
        "strata_ws_polls_skipped_total",
        "subscription reads skipped for want of a turn, by reason"
    );
    describe_counter!(
        "strata_persisted_queries_not_kept_total",
        "persisted queries that ran but were not kept, by reason"
    );
    describe_gauge!("strata_ws_connections", "open WebSockets");
    describe_gauge!("strata_ws_subscriptions", "running subscriptions");
}

/// The label of an operation name: the name when it is a GraphQL name of
/// at most 64 characters and one of the first [`MAX_OPERATION_NAMES`]
/// seen, `anonymous` without a name, else `other`.
pub fn operation_label(name: Option<&str>) -> String {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return "anonymous".to_owned();
    };
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return "other".to_owned();
    }
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        return name.to_owned();
    }
    "other".to_owned()
}

/// Sets the pool gauges from `status` (just before a scrape renders).
pub fn pool(status: PoolStatus) {
    let in_use = status.open.saturating_sub(status.idle);
    metrics::gauge!("strata_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("strata_db_pool_connections", "state" => "idle").set(f64::from(status.idle));
    metrics::gauge!("strata_db_pool_max_connections").set(f64::from(status.max));
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("strata_db_pool_waiting").set(status.waiting as f64);
}

/// Counts a request or subscription a rate limit refused.
pub fn rate_limited(scope: &'static str, transport: &'static str) {
    let scope = match scope {
        "client address" => "address",
        "organization" => "org",
        other => other,
    };
    metrics::counter!("strata_rate_limited_total", "scope" => scope, "transport" => transport)
        .increment(1);
}

/// Counts a refused credential.
pub fn auth_failed(reason: &'static str, transport: &'static str) {
    metrics::counter!("strata_auth_failures_total", "reason" => reason, "transport" => transport)
        .increment(1);
}

/// A gauge raised while the guard lives.
pub struct Raised(&'static str);

impl Raised {
    /// Raises `gauge` by one until dropped.
    pub fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Load {
    requests: u64,
    db_seconds: f64,
}

/// Requests and database time per organization since start, exported for
/// the heaviest few only.
#[derive(Debug)]
pub struct TopTenants {
    top: usize,
    load: Mutex<(HashMap<OrgId, Load>, Load)>,
}

impl TopTenants {
    /// Exports at most `top` organizations of their own.
    pub fn new(top: usize) -> Self {
        Self {
            top,
            load: Mutex::new((HashMap::new(), Load::default())),
        }
    }

    fn with(&self, org: OrgId, f: impl FnOnce(&mut Load)) {
        let mut guard = self
            .load
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tenants, overflow) = &mut *guard;
        if let Some(load) = tenants.get_mut(&org) {
            f(load);
        } else if tenants.len() < MAX_TENANTS {
            f(tenants.entry(org).or_default());
        } else {
            f(overflow);
        }
    }

    /// Counts one request of `org`.
    pub fn request(&self, org: OrgId) {
        self.with(org, |l| l.requests += 1);
    }

    /// Adds database time of `org`.
    pub fn db_time(&self, org: OrgId, time: Duration) {
        self.with(org, |l| l.db_seconds += time.as_secs_f64());
    }

    /// The Prometheus text of `strata_tenant_requests_total{org_id}` and
    /// `strata_tenant_db_seconds_total{org_id}`: the heaviest organizations
    /// by database time (then requests) get a series each, the others
    /// one `other` series.
    pub fn render(&self) -> String {
        let (mut tenants, overflow): (Vec<(OrgId, Load)>, Load) = {
            let guard = self
                .load
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (guard.0.iter().map(|(k, v)| (*k, *v)).collect(), guard.1)
        };
        tenants.sort_by(|a, b| {
            b.1.db_seconds
                .total_cmp(&a.1.db_seconds)
                .then(b.1.requests.cmp(&a.1.requests))
                .then(a.0.as_uuid().cmp(&b.0.as_uuid()))
        });
        let split = tenants.len().min(self.top);
        let (top, rest) = tenants.split_at(split);
        let other = rest.iter().fold(overflow, |acc, (_, l)| Load {
            requests: acc.requests + l.requests,
            db_seconds: acc.db_seconds + l.db_seconds,
        });
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP strata_tenant_requests_total /graphql requests of the heaviest organizations (the rest under org_id=\"other\")\n# TYPE strata_tenant_requests_total counter"
        );
        for (org, l) in top {
            let _ = writeln!(
                out,
                "strata_tenant_requests_total{{org_id=\"{org}\"}} {}",
                l.requests
            );
        }
        let _ = writeln!(
            out,
            "strata_tenant_requests_total{{org_id=\"other\"}} {}",
            other.requests
        );
        let _ = writeln!(
            out,
            "# HELP strata_tenant_db_seconds_total database time of the heaviest organizations' request transactions (the rest under org_id=\"other\")\n# TYPE strata_tenant_db_seconds_total counter"
        );
        for (org, l) in top {
            let _ = writeln!(
                out,
                "strata_tenant_db_seconds_total{{org_id=\"{org}\"}} {}",
                l.db_seconds
            );
        }
        let _ = writeln!(
            out,
            "strata_tenant_db_seconds_total{{org_id=\"other\"}} {}",
            other.db_seconds
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("")), "anonymous");
        assert_eq!(operation_label(Some("Me")), "Me");
        assert_eq!(operation_label(Some("not a name")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
        for i in 0..MAX_OPERATION_NAMES {
            let _ = operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("OneTooMany")), "other");
        assert_eq!(operation_label(Some("Me")), "Me", "a name seen stays");
    }

    #[test]
    fn the_heaviest_tenants_get_a_series_and_the_rest_one_other() {
        let t = TopTenants::new(2);
        let orgs: Vec<OrgId> = (0..4).map(|_| OrgId::generate()).collect();
        for (i, org) in orgs.iter().enumerate() {
            for _ in 0..=i {
                t.request(*org);
            }
            t.db_time(*org, Duration::from_millis(100 * (i as u64 + 1)));
        }
        let text = t.render();
        assert!(
            text.contains(&format!(
                "strata_tenant_requests_total{{org_id=\"{}\"}} 4",
                orgs[3]
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "strata_tenant_requests_total{{org_id=\"{}\"}} 3",
                orgs[2]
            )),
            "{text}"
        );
        assert!(!text.contains(&orgs[0].to_string()), "{text}");
        assert!(
            text.contains("strata_tenant_requests_total{org_id=\"other\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("strata_tenant_db_seconds_total{org_id=\"other\"} 0.3"),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("strata_tenant_"))
                .count(),
            6
        );
    }
}
