crate::sql_migration!("m20261123_000007_run_leases");
