crate::sql_migration!("m20261204_000015_run_lists");
