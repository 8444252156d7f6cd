//! No N+1 where a UI nests lists: every field under the nodes of every
//! top-level connection, generated from the schema itself (so a new field
//! cannot be forgotten), costs the same number of statements for a page of
//! two outer items as for eight.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, ok};

const INTROSPECTION: &str = "{ __schema { queryType { name } types { name kind fields {
  name args { name type { kind } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

fn named(t: &Value) -> (&str, bool) {
    let mut t = t;
    let mut list = false;
    loop {
        match t["kind"].as_str() {
            Some("NON_NULL") => t = &t["ofType"],
            Some("LIST") => {
                list = true;
                t = &t["ofType"];
            }
            _ => return (t["name"].as_str().unwrap_or_default(), list),
        }
    }
}

/// How many statements `query` costs with `vars`, as the agency's owner.
pub(crate) async fn statements(app: &TestApp, w: &World, query: &str, vars: Value) -> (u64, Value) {
    let schema = strata_graphql::schema(&strata_graphql::Limits::default());
    let resolved = strata_persistence::context::resolve_user(
        &app.db,
        w.agency1.owner,
        &Default::default(),
        Some(w.agency1.id),
        Default::default(),
        "nested",
    )
    .await
    .unwrap();
    let rs = strata_graphql::RequestState::for_user(app.db.clone(), resolved, "nested".into());
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(vars))
        .data(rs.clone());
    let resp = schema.execute(request).await;
    assert!(resp.errors.is_empty(), "{query}: {:?}", resp.errors);
    let data = resp.data.into_json().unwrap();
    rs.finish().await.unwrap();
    (rs.statements(), data)
}

#[tokio::test]
async fn every_field_nested_under_a_list_costs_the_same_statements_for_two_items_as_for_eight() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    // Eight clients, each with campaigns (with runs and outputs), personas
    // and brand guidelines; keys and audit rows come with them.
    for i in 0..6 {
        ok(
            &app,
            &owner,
            &format!("mutation {{ createClient(input: {{name: \"Nested {i}\", slug: \"nested-{i}\"}}) {{ id }} }}"),
            json!({}),
        )
        .await;
        ok(
            &app,
            &owner,
            &format!(
                "mutation {{ createApiKey(input: {{name: \"nested {i}\"}}) {{ key {{ id }} }} }}"
            ),
            json!({}),
        )
        .await;
    }
    let clients = ok(
        &app,
        &owner,
        "{ clients(first: 100) { nodes { id } } }",
        json!({}),
    )
    .await;
    let client_ids: Vec<String> = clients["clients"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(client_ids.len() >= 8, "{clients}");
    // Keys with and without a client, alternately.
    for (i, c) in client_ids.iter().enumerate() {
        let client = if i % 2 == 0 { json!(c) } else { Value::Null };
        ok(
            &app,
            &owner,
            "mutation($c: ID) { createApiKey(input: {name: \"nested\", clientId: $c}) { key { id } } }",
            json!({ "c": client }),
        )
        .await;
    }
    for c in &client_ids {
        for _ in 0..2 {
            ok(
                &app,
                &owner,
                "mutation($c: ID!) { createCampaign(input: {clientId: $c, name: \"nested\"}) { id } createPersona(input: {clientId: $c, name: \"nested\"}) { id } }",
                json!({ "c": c }),
            )
            .await;
        }
        ok(
            &app,
            &owner,
            "mutation($c: ID!) { saveBrandGuidelines(input: {clientId: $c, content: {tone: \"calm\"}}) { clientId } }",
            json!({ "c": c }),
        )
        .await;
    }
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, output, created_at)
           SELECT c.org_id, gen_random_uuid(), c.client_id, c.id, 'BRAND_VOICE', s, '{{\"version\": 1}}',
                  now() - j * interval '1 second'
           FROM tenant_b.campaigns c, generate_series(1, 3) AS j,
                unnest(ARRAY['SUCCEEDED', 'FAILED']) AS s
           WHERE c.org_id = '{}'",
        w.agency1.id
    ))
    .await
    .unwrap();

    let (_, intro) = statements(&app, &w, INTROSPECTION, json!({})).await;
    let types = intro["__schema"]["types"].as_array().unwrap().clone();
    let ty = |name: &str| types.iter().find(|t| t["name"] == name).cloned();
    let query_type = intro["__schema"]["queryType"]["name"].as_str().unwrap();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for root in ty(query_type).unwrap()["fields"].as_array().unwrap() {
        let (conn, _) = named(&root["type"]);
        let takes_first = root["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "first");
        if !conn.ends_with("Connection") || !takes_first {
            continue;
        }
        let Some(node_type) = ty(conn)
            .and_then(|c| {
                c["fields"]
                    .as_array()
                    .and_then(|f| f.iter().find(|f| f["name"] == "nodes").cloned())
            })
            .map(|f| named(&f["type"]).0.to_owned())
        else {
            continue;
        };
        let node = ty(&node_type).unwrap();
        for field in node["fields"].as_array().unwrap() {
            let (inner, _) = named(&field["type"]);
            let inner_kind = ty(inner).map(|t| t["kind"].as_str().unwrap_or_default().to_owned());
            if !matches!(inner_kind.as_deref(), Some("OBJECT" | "INTERFACE")) {
                continue;
            }
            let required = field["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["type"]["kind"] == "NON_NULL");
            if required {
                continue;
            }
            let sub = if inner.ends_with("Connection") {
                "{ totalCount pageInfo { hasNextPage } nodes { __typename } }".to_owned()
            } else {
                "{ __typename }".to_owned()
            };
            let name = field["name"].as_str().unwrap();
            let root_name = root["name"].as_str().unwrap();
            let query = format!(
                "query($n: Int) {{ {root_name}(first: $n) {{ nodes {{ __typename {name} {sub} }} }} }}"
            );
            let (one, data_one) = statements(&app, &w, &query, json!({ "n": 2 })).await;
            let (eight, data_eight) = statements(&app, &w, &query, json!({ "n": 8 })).await;
            let items = |d: &Value| d[root_name]["nodes"].as_array().map_or(0, Vec::len);
            if items(&data_one) < 2 || items(&data_eight) <= items(&data_one) {
                // Too few outer items to tell.
                continue;
            }
            checked.push(format!("{root_name} {{ {name} }}"));
            if one != eight {
                failures.push(format!(
                    "{root_name} {{ {name} }}: {one} statements for 2, {eight} for {}",
                    items(&data_eight)
                ));
            }
        }
    }
    for must in [
        "clients { campaigns }",
        "clients { personas }",
        "clients { brandGuidelines }",
        "campaigns { outputs }",
        "campaigns { runs }",
        "campaigns { client }",
    ] {
        assert!(checked.iter().any(|c| c == must), "{must} in {checked:#?}");
    }
    assert!(failures.is_empty(), "N+1: {failures:#?}");
}
