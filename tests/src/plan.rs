//! Reading `EXPLAIN (FORMAT JSON)` plans, on one PostgreSQL and on Citus
//! (whose plans hold the workers' remote plans, with shard names).

use sea_orm::ConnectionTrait;
use serde_json::Value;

/// The plan of `query` as run on `conn`.
pub async fn explain(conn: &impl ConnectionTrait, query: &str) -> Value {
    conn.query_one_raw(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        format!("EXPLAIN (FORMAT JSON) {query}"),
    ))
    .await
    .unwrap_or_else(|e| panic!("EXPLAIN {query}: {e}"))
    .expect("a plan")
    .try_get_by_index(0)
    .expect("a JSON plan")
}

/// Every node of a plan, depth first: anything with a node type, so on
/// Citus the workers' remote plans too.
pub fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![plan];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if map.contains_key("Node Type") {
                    out.push(value);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// A shard's relation or index name without Citus's `_<shard id>`.
pub fn unsharded(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}
