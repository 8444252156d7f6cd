//! Relay's object identification: `node(id:)` and `nodes(ids:)` fetch every
//! kind of object again by the id it carries, in the caller's context only;
//! and the stock relay-compiler accepts the schema with a `@refetchable`
//! fragment on `Campaign` and a `@connection` pagination fragment.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use strata_tests::tier::{self, Part};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};

/// Every object an agency owner can list, by type: the ids it carries.
const EVERYTHING: &str = "{
  organization { id }
  me { memberships { id } }
  clients(first: 100) { nodes { id } }
  campaigns(first: 100) { nodes { id runs(first: 10) { nodes { id } } outputs(first: 10) { nodes { id runId } } } }
  personas(first: 100) { nodes { id } }
  members(first: 100) { nodes { id } }
  apiKeys(first: 100) { nodes { id } }
  auditLog(first: 100) { nodes { id } }
}";

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";

fn ids_by_type(data: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |ty: &str, v: &Value| {
        if let Some(id) = v["id"].as_str() {
            out.insert(id.to_owned(), ty.to_owned());
        }
    };
    add("Organization", &data["organization"]);
    for m in data["me"]["memberships"].as_array().into_iter().flatten() {
        add("Membership", m);
    }
    for (field, ty) in [
        ("clients", "Client"),
        ("campaigns", "Campaign"),
        ("personas", "Persona"),
        ("members", "Membership"),
        ("apiKeys", "ApiKey"),
        ("auditLog", "AuditEntry"),
    ] {
        for n in data[field]["nodes"].as_array().into_iter().flatten() {
            add(ty, n);
        }
    }
    for c in data["campaigns"]["nodes"].as_array().into_iter().flatten() {
        for r in c["runs"]["nodes"].as_array().into_iter().flatten() {
            add("AgentRun", r);
        }
        for o in c["outputs"]["nodes"].as_array().into_iter().flatten() {
            add("AgentOutput", o);
        }
    }
    out
}

#[tokio::test]
async fn every_kind_of_object_is_fetched_again_by_its_id_only_in_its_callers_context() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    // A key, so that there is one to fetch.
    ok(
        &app,
        &owner,
        "mutation { createApiKey(input: {name: \"relay\"}) { key { id } } }",
        json!({}),
    )
    .await;
    let data = ok(&app, &owner, EVERYTHING, json!({})).await;
    let objects = ids_by_type(&data);
    let kinds: std::collections::BTreeSet<&str> = objects.values().map(String::as_str).collect();
    assert_eq!(
        kinds.len(),
        9,
        "the world has every kind of node: {kinds:?}"
    );

    // The owner gets each object back, of its type, by its id.
    let ids: Vec<&String> = objects.keys().collect();
    for chunk in ids.chunks(100) {
        let got = ok(&app, &owner, NODES, json!({ "ids": chunk })).await;
        for (id, node) in chunk.iter().zip(got["nodes"].as_array().unwrap()) {
            assert_eq!(node["id"].as_str(), Some(id.as_str()), "{node}");
            assert_eq!(
                node["__typename"].as_str(),
                Some(objects[*id].as_str()),
                "{node}"
            );
        }
    }
    for (id, ty) in &objects {
        let got = ok(
            &app,
            &owner,
            "query($id: ID!) { node(id: $id) { __typename id } }",
            json!({ "id": id }),
        )
        .await;
        assert_eq!(
            got["node"]["__typename"].as_str(),
            Some(ty.as_str()),
            "{id}"
        );
    }

    // An output's id also names its run wherever a run's id is taken.
    let output = data["campaigns"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["outputs"]["nodes"].as_array().unwrap().clone())
        .next()
        .expect("an output");
    let run = ok(
        &app,
        &owner,
        "query($id: ID!) { agentRun(id: $id) { id } }",
        json!({ "id": output["id"] }),
    )
    .await;
    assert_eq!(run["agentRun"]["id"], output["runId"]);

    // Anyone else sees null where the owner sees an object, exactly as for
    // an id that exists nowhere: SMEs, the other agency, an account manager
    // for the clients it is not assigned, a viewer for what its role does
    // not list.
    let nowhere = uuid::Uuid::new_v4().to_string();
    for (who, token) in [
        ("SME-1's owner", app.token(w.sme1.owner, Some(w.sme1.id))),
        (
            "AGENCY-2's owner",
            app.token(w.agency2.owner, Some(w.agency2.id)),
        ),
        (
            "the account manager",
            app.token(w.account_manager, Some(w.agency1.id)),
        ),
        ("the viewer", app.token(w.viewer, Some(w.agency1.id))),
    ] {
        let mut visible = 0;
        for chunk in ids.chunks(100) {
            let got = ok(&app, &token, NODES, json!({ "ids": chunk })).await;
            for (id, node) in chunk.iter().zip(got["nodes"].as_array().unwrap()) {
                if node.is_null() {
                    continue;
                }
                visible += 1;
                // What is visible is what the caller's own queries show.
                let single = ok(
                    &app,
                    &token,
                    "query($id: ID!) { node(id: $id) { id } }",
                    json!({ "id": id }),
                )
                .await;
                assert_eq!(single["node"]["id"].as_str(), Some(id.as_str()));
            }
        }
        let own = ids_by_type(&app.graphql(Some(&token), EVERYTHING, json!({})).await.1["data"]);
        let shared = objects.keys().filter(|id| own.contains_key(*id)).count();
        assert_eq!(visible, shared, "{who} sees by id exactly what it lists");
        let got = ok(&app, &token, NODES, json!({ "ids": [nowhere] })).await;
        assert_eq!(got["nodes"], json!([null]), "{who}");
    }
    // Whatever its role, a member fetches its own membership again.
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let mine = ok(
        &app,
        &viewer,
        "{ me { memberships { id organizationId } } }",
        json!({}),
    )
    .await;
    let own = mine["me"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organizationId"] == w.agency1.id.to_string())
        .unwrap()["id"]
        .clone();
    let got = ok(
        &app,
        &viewer,
        "query($id: ID!) { node(id: $id) { __typename id } }",
        json!({ "id": own }),
    )
    .await;
    assert_eq!(got["node"]["id"], own, "{got}");
    // The account manager sees Nike's objects and none of Adidas's.
    let am = app.token(w.account_manager, Some(w.agency1.id));
    let got = ok(
        &app,
        &am,
        NODES,
        json!({ "ids": [w.nike.to_string(), w.adidas.to_string(), w.nike_campaigns[0].to_string(), w.adidas_campaigns[0].to_string()] }),
    )
    .await;
    let types: Vec<&Value> = got["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["__typename"])
        .collect();
    assert_eq!(
        types,
        [
            &json!("Client"),
            &Value::Null,
            &json!("Campaign"),
            &Value::Null
        ],
        "{got}"
    );
}

#[tokio::test]
async fn nodes_costs_one_statement_per_kind_whatever_the_number_of_ids() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    // Ids of other tenants and ids of nothing: every kind is tried.
    let foreign: Vec<String> = w
        .sme1
        .campaigns
        .iter()
        .chain(&w.agency2.campaigns)
        .map(ToString::to_string)
        .chain((0..40).map(|_| uuid::Uuid::new_v4().to_string()))
        .collect();
    let query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }";
    let (one, _) =
        crate::nested::statements(&app, &w, query, json!({ "ids": &foreign[..1] })).await;
    let (all, data) = crate::nested::statements(&app, &w, query, json!({ "ids": foreign })).await;
    assert!(
        data["nodes"].as_array().unwrap().iter().all(Value::is_null),
        "{data}"
    );
    assert_eq!(one, all, "statements for 1 id and for {}", foreign.len());
}

#[tokio::test]
async fn node_ids_that_are_not_ids_are_bad_input_and_nodes_is_bounded() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let (_, body) = app
        .graphql(
            Some(&token),
            "{ node(id: \"not an id\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let (_, body) = app
        .graphql(Some(&token), NODES, json!({ "ids": many }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "ids", "{body}");
    // An opaque id of no kind of ours is nothing, like an unknown UUID.
    let (_, body) = app
        .graphql(
            Some(&token),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": "VW5rbm93bjoxMjM" }),
        )
        .await;
    assert_eq!(body["data"]["node"], Value::Null, "{body}");
}

/// The stock relay-compiler over `schema.graphql`: a `@refetchable`
/// fragment on `Campaign` (which needs `Node` and `node(id:)`), a
/// `@connection` pagination fragment over `campaigns`, and a query using
/// them.
#[tokio::test]
async fn relay_compiler_accepts_a_refetchable_campaign_and_a_paginated_connection() {
    if !tier::available(
        Part::Node,
        "relay_compiler_accepts_a_refetchable_campaign_and_a_paginated_connection",
    ) {
        return;
    }
    let dir = strata_tests::private_dir("strata-relay");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    std::fs::copy(&schema, dir.join("schema.graphql")).unwrap();
    std::fs::write(
        dir.join("relay.config.json"),
        r#"{ "src": "./src", "schema": "./schema.graphql", "language": "javascript" }"#,
    )
    .unwrap();
    for (file, text) in [
        (
            "Campaign.js",
            "import { graphql } from 'react-relay';
export const campaign = graphql`
  fragment Campaign_campaign on Campaign @refetchable(queryName: \"CampaignRefetchQuery\") {
    id name status
    client { id name }
    outputs(first: 5) { nodes { id runId agent } }
  }
`;",
        ),
        (
            "CampaignList.js",
            "import { graphql } from 'react-relay';
export const list = graphql`
  fragment CampaignList_query on Query
  @argumentDefinitions(count: { type: \"Int\", defaultValue: 10 }, cursor: { type: \"String\" })
  @refetchable(queryName: \"CampaignListPaginationQuery\") {
    campaigns(first: $count, after: $cursor) @connection(key: \"CampaignList_campaigns\") {
      edges { node { id ...Campaign_campaign } }
    }
  }
`;",
        ),
        (
            "App.js",
            "import { graphql } from 'react-relay';
export const query = graphql`
  query AppQuery { ...CampaignList_query }
`;",
        ),
    ] {
        std::fs::write(src.join(file), text).unwrap();
    }
    let cli = tier::browser_dir().join("node_modules/relay-compiler/cli.js");
    let out = tokio::process::Command::new("node")
        .arg(&cli)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "relay-compiler failed:\n{log}");
    assert!(
        !log.contains("ERROR"),
        "relay-compiler reported errors:\n{log}"
    );
    let refetch =
        std::fs::read_to_string(src.join("__generated__/CampaignRefetchQuery.graphql.js"))
            .unwrap_or_else(|e| panic!("the refetch query was generated ({e}):\n{log}"));
    assert!(refetch.contains("node(id: $id)"), "{refetch}");
    assert!(
        src.join("__generated__/CampaignListPaginationQuery.graphql.js")
            .is_file(),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Walks `path` (a connection under `query`'s data) backward, `last: 2`
/// at a time, and returns the ids in list order with each page's flags.
async fn walk_backward(app: &TestApp, token: &str, field: &str, vars: &Value) -> Vec<String> {
    let query = operation(&field.replace("ARGS", "last: 2, before: $before"));
    let mut ids: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut v = vars.clone();
        v["before"] = json!(before);
        let data = ok(app, token, &query, v).await;
        let conn = connection_in(&data);
        let page: Vec<String> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(page.len() <= 2, "{conn}");
        assert_eq!(
            conn["pageInfo"]["hasNextPage"].as_bool(),
            Some(before.is_some()),
            "{field}: {conn}"
        );
        let more = conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap();
        let mut all = page.clone();
        all.extend(ids);
        ids = all;
        if !more {
            return ids;
        }
        assert_eq!(page.len(), 2, "a full page before the start: {conn}");
        before = conn["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
}

/// A query of `body`, declaring the variables it uses.
fn operation(body: &str) -> String {
    let declared: Vec<String> = [
        ("$campaign", "ID"),
        ("$client", "ID"),
        ("$before", "String"),
        ("$lower", "String"),
        ("$upper", "String"),
    ]
    .iter()
    .filter(|(n, _)| body.contains(n))
    .map(|(n, t)| format!("{n}: {t}"))
    .collect();
    if declared.is_empty() {
        format!("{{ {body} }}")
    } else {
        format!("query({}) {{ {body} }}", declared.join(", "))
    }
}

/// The one connection in `data`, however deep.
fn connection_in(data: &Value) -> &Value {
    let mut v = data;
    loop {
        if v.get("edges").is_some() {
            return v;
        }
        let Some(next) = v
            .as_object()
            .and_then(|o| o.values().find(|x| x.is_object()))
        else {
            panic!("no connection in {data}");
        };
        v = next;
    }
}

#[tokio::test]
async fn every_connection_pages_backward_with_last_and_before_as_it_pages_forward() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    for _ in 0..3 {
        ok(
            &app,
            &owner,
            "mutation { createApiKey(input: {name: \"page\"}) { key { id } } }",
            json!({}),
        )
        .await;
    }
    let campaign = w.nike_campaigns[0].to_string();
    // A few items in every connection.
    for i in 0..3 {
        ok(
            &app,
            &owner,
            &format!("mutation {{ createClient(input: {{name: \"Page {i}\", slug: \"page-{i}\"}}) {{ id }} }}"),
            json!({}),
        )
        .await;
        ok(
            &app,
            &owner,
            "mutation($c: ID!) { createPersona(input: {clientId: $c, name: \"page\"}) { id } }",
            json!({ "c": w.nike.to_string() }),
        )
        .await;
        ok(
            &app,
            &owner,
            "mutation($c: ID!) { createCampaign(input: {clientId: $c, name: \"page\"}) { id } }",
            json!({ "c": w.nike.to_string() }),
        )
        .await;
        let run = ok(
            &app,
            &owner,
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": campaign }),
        )
        .await;
        let id = run["runAgent"]["id"].as_str().unwrap().to_owned();
        // Offline runs end at once; wait for each to succeed.
        for _ in 0..200 {
            let got = ok(
                &app,
                &owner,
                "query($id: ID!) { agentRun(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
            if got["agentRun"]["status"] == "SUCCEEDED" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let edges = "edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }";
    let fields = [
        format!("clients(ARGS) {{ {edges} }}"),
        format!("campaigns(ARGS) {{ {edges} }}"),
        format!("campaigns(clientId: $client, ARGS) {{ {edges} }}"),
        format!("personas(ARGS) {{ {edges} }}"),
        format!("members(ARGS) {{ {edges} }}"),
        format!("auditLog(ARGS) {{ {edges} }}"),
        format!("apiKeys(ARGS) {{ {edges} }}"),
        format!("campaign(id: $campaign) {{ runs(ARGS) {{ {edges} }} }}"),
        format!("agentRuns(ARGS) {{ {edges} }}"),
        format!("campaign(id: $campaign) {{ outputs(ARGS) {{ {edges} }} }}"),
    ];
    for field in &fields {
        let vars = json!({ "campaign": campaign, "client": w.nike.to_string() });
        let forward_query = operation(&field.replace("ARGS", "first: 100"));
        let data = ok(&app, &owner, &forward_query, vars.clone()).await;
        let conn = connection_in(&data);
        let forward: Vec<String> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            forward.len() >= 3,
            "{field} has a few items to page: {conn}"
        );
        let backward = walk_backward(&app, &owner, field, &vars).await;
        assert_eq!(backward, forward, "{field}");

        // A window between two cursors, from either end.
        let cursors: Vec<&str> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cursor"].as_str().unwrap())
            .collect();
        let n = cursors.len();
        for args in ["first: 100", "last: 100"] {
            let q = operation(
                &field.replace("ARGS", &format!("{args}, after: $lower, before: $upper")),
            );
            let mut v = vars.clone();
            v["lower"] = json!(cursors[0]);
            v["upper"] = json!(cursors[n - 1]);
            let data = ok(&app, &owner, &q, v).await;
            let inner: Vec<String> = connection_in(&data)["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(inner, forward[1..n - 1], "{field} {args}");
        }
    }

    // One count, not both; counts within bounds.
    for (args, field) in [
        ("first: 2, last: 2", "last"),
        ("last: 101", "last"),
        ("last: -1", "last"),
    ] {
        let (_, body) = app
            .graphql(
                Some(&owner),
                &format!("{{ campaigns({args}) {{ edges {{ node {{ id }} }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{args}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let (_, body) = app
        .graphql(
            Some(&owner),
            "{ campaigns(last: 2, before: \"nonsense\") { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "before", "{body}");
}
