crate::sql_migration!("m20261205_000022_retention");
