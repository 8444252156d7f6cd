crate::sql_migration!("m20261124_000010_gateway_reads_migration_status");
