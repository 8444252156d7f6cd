crate::sql_migration!("m20261203_000013_reporting_views");
