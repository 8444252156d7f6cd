//! Integration tests: one binary, a real PostgreSQL, the real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod catalog;
mod isolation;
mod migrations;
