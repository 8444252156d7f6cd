crate::sql_migration!("m20261123_000008_inlinable_helpers");
