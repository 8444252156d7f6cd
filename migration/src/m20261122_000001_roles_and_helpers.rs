crate::sql_migration!("m20261122_000001_roles_and_helpers");
