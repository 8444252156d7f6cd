crate::sql_migration!("m20261122_000003_tenant_b_tables");
