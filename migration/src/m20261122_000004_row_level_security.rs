crate::sql_migration!("m20261122_000004_row_level_security");
