crate::sql_migration!("m20261203_000012_read_only_usage");
