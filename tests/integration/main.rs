//! Integration tests: one binary, a real PostgreSQL, the real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_failures;
mod agent_inputs;
mod agents;
mod api;
mod api_keys;
mod audit;
mod auth;
mod browser;
mod catalog;
mod citus;
mod cost;
mod deploy;
mod drift;
mod faults;
mod fuzz;
mod http;
mod isolation;
mod matrix;
mod member_pages;
mod members;
mod metrics;
mod migrations;
mod pgbouncer;
mod rate_limits;
mod relay;
mod reporting;
mod schema_sql;
mod security;
mod sockets;
mod startup;
mod subscriptions;
mod tidy;
mod tls;
mod tools;
