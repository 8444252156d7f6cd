crate::sql_migration!("m20261122_000002_public_tables");
