crate::sql_migration!("m20261124_000009_administration");
