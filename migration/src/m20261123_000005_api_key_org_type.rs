crate::sql_migration!("m20261123_000005_api_key_org_type");
