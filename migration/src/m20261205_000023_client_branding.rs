crate::sql_migration!("m20261205_000023_client_branding");
