crate::sql_migration!("m20261204_000018_org_quota");
