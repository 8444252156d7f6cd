crate::sql_migration!("m20261204_000019_key_rotation");
