crate::sql_migration!("m20261204_000016_list_orders");
