//! The `reporting` views over both schemas and the tenant context of
//! reporting logins: `sql/m20261203_000013_reporting_views.up.sql`.
crate::sql_migration!("m20261203_000013_reporting_views");
