crate::sql_migration!("m20261124_000011_administer_reads");
