crate::sql_migration!("m20261205_000021_key_scopes");
