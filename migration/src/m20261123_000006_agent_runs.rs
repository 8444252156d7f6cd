crate::sql_migration!("m20261123_000006_agent_runs");
