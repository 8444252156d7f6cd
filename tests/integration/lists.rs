//! Lists a board is built on: `campaigns`, `clients`, `personas` and
//! `agentRuns` filtered, searched by name and sorted either way, paged in
//! both directions with cursors bound to their order and filter. Every
//! answer is compared with what the database holds.

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar, texts};

async fn setup() -> (TestApp, World, DatabaseConnection) {
    let app = TestApp::spawn().await;
    let (world, su) = World::on(&app).await;
    (app, world, su)
}

/// The names of a connection's nodes, in order.
fn names(conn: &Value) -> Vec<String> {
    conn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Walks a whole list `size` items at a time, forward with `first`/`after`
/// or backward with `last`/`before`, and returns the names in the list's
/// order.
#[allow(clippy::too_many_arguments)]
async fn walk(
    app: &TestApp,
    token: &str,
    field: &str,
    decls: &str,
    args: &str,
    vars: Value,
    size: usize,
    backward: bool,
) -> Vec<String> {
    let (count, cursor, info) = if backward {
        ("last", "before", "hasPreviousPage startCursor")
    } else {
        ("first", "after", "hasNextPage endCursor")
    };
    let query = format!(
        "query($c: String{decls}) {{
           {field}({count}: {size}, {cursor}: $c{args}) {{ nodes {{ name }} pageInfo {{ {info} }} }} }}"
    );
    let mut at: Option<String> = None;
    let mut pages: Vec<Vec<String>> = Vec::new();
    loop {
        let mut v = vars.clone();
        v["c"] = json!(at);
        let data = ok(app, token, &query, v).await;
        let conn = &data[field];
        pages.push(names(conn));
        let info = &conn["pageInfo"];
        let more = if backward {
            info["hasPreviousPage"].as_bool().unwrap()
        } else {
            info["hasNextPage"].as_bool().unwrap()
        };
        if !more {
            break;
        }
        let next = if backward {
            &info["startCursor"]
        } else {
            &info["endCursor"]
        };
        at = Some(next.as_str().unwrap().to_owned());
        assert!(pages.len() < 50, "{field} does not end");
    }
    if backward {
        pages.reverse();
    }
    pages.concat()
}

#[tokio::test]
async fn campaigns_sort_by_name_or_creation_either_way_and_page_through_both_directions() {
    let (app, w, su) = setup().await;
    let org = w.sme1.id;
    // Names that sort differently by case, by creation and by position of
    // a shared part, some with LIKE's wildcards in them.
    su.execute_unprepared(&format!(
        "INSERT INTO public.campaigns (org_id, id, name, status, created_at)
           SELECT '{org}', gen_random_uuid(), n, s, now() - i * interval '1 hour'
           FROM unnest(ARRAY['Zeta launch', 'alpha launch', 'Beta 100% reach', 'beta_two', 'Gamma',
                             'delta LAUNCH', 'epsilon', 'Eta 50% off', 'theta', 'Iota_launch', 'kappa'],
                       ARRAY['ACTIVE', 'DRAFT', 'ACTIVE', 'PAUSED', 'COMPLETED',
                             'ACTIVE', 'DRAFT', 'PAUSED', 'ACTIVE', 'DRAFT', 'ARCHIVED'])
             WITH ORDINALITY AS t(n, s, i)"
    ))
    .await
    .unwrap();
    let token = app.token(w.sme1.owner, Some(org));
    let db = |order: &str| {
        format!("SELECT name FROM public.campaigns WHERE org_id = '{org}' ORDER BY {order}")
    };
    for (o, sql) in [
        (json!({ "field": "NAME", "direction": "ASC" }), "name, id"),
        (
            json!({ "field": "NAME", "direction": "DESC" }),
            "name DESC, id DESC",
        ),
        (
            json!({ "field": "CREATED_AT", "direction": "ASC" }),
            "created_at, id",
        ),
        (json!({ "field": "CREATED_AT" }), "created_at DESC, id DESC"),
    ] {
        let expected = texts(&su, &db(sql)).await;
        assert_eq!(expected.len(), 13, "the two seeded and eleven more");
        for backward in [false, true] {
            let got = walk(
                &app,
                &token,
                "campaigns",
                ", $o: ListOrder",
                ", orderBy: $o",
                json!({ "o": o }),
                4,
                backward,
            )
            .await;
            assert_eq!(got, expected, "{o} backward: {backward}");
        }
    }
}

#[tokio::test]
async fn campaigns_filter_by_status_range_client_and_search_and_count_what_they_list() {
    let (app, w, su) = setup().await;
    let org = w.sme1.id;
    su.execute_unprepared(&format!(
        "INSERT INTO public.campaigns (org_id, id, name, status, created_at) VALUES
           ('{org}', gen_random_uuid(), 'Spring LAUNCH', 'ACTIVE', '2026-03-01T00:00:00Z'),
           ('{org}', gen_random_uuid(), 'summer launch', 'PAUSED', '2026-06-01T00:00:00Z'),
           ('{org}', gen_random_uuid(), 'Autumn 100% push', 'ACTIVE', '2026-09-01T00:00:00Z'),
           ('{org}', gen_random_uuid(), 'winter_push', 'DRAFT', '2026-12-01T00:00:00Z'),
           ('{org}', gen_random_uuid(), 'winterXpush', 'DRAFT', '2026-12-02T00:00:00Z')"
    ))
    .await
    .unwrap();
    let token = app.token(w.sme1.owner, Some(org));
    let list = |filter: Value, search: Value| {
        let app = &app;
        let token = &token;
        async move {
            let data = ok(
                app,
                token,
                "query($f: CampaignFilter, $s: String) {
                   campaigns(first: 100, filter: $f, search: $s, orderBy: {field: NAME, direction: ASC}) {
                     totalCount nodes { name status } } }",
                json!({ "f": filter, "s": search }),
            )
            .await;
            let conn = &data["campaigns"];
            let got = names(conn);
            assert_eq!(conn["totalCount"].as_u64(), Some(got.len() as u64));
            got
        }
    };
    let cases = [
        (json!(null), json!("LAUNCH"), "name ILIKE '%launch%'"),
        (json!(null), json!("  launch "), "name ILIKE '%launch%'"),
        (json!(null), json!("100%"), "strpos(name, '100%') > 0"),
        (json!(null), json!("_"), "strpos(name, '_') > 0"),
        (json!(null), json!(""), "true"),
        (
            json!({ "status": ["ACTIVE", "PAUSED"] }),
            json!(null),
            "status IN ('ACTIVE', 'PAUSED')",
        ),
        (
            json!({ "createdAfter": "2026-06-01T00:00:00Z", "createdBefore": "2026-12-01T00:00:00Z" }),
            json!(null),
            "created_at >= '2026-06-01T00:00:00Z' AND created_at < '2026-12-01T00:00:00Z'",
        ),
        (
            json!({ "status": ["DRAFT"] }),
            json!("PUSH"),
            "status = 'DRAFT' AND name ILIKE '%push%'",
        ),
        (json!({ "status": [] }), json!("nothing like it"), "false"),
    ];
    for (filter, search, sql) in cases {
        let expected = texts(
            &su,
            &format!(
                "SELECT name FROM public.campaigns WHERE org_id = '{org}' AND ({sql}) ORDER BY name, id"
            ),
        )
        .await;
        assert_eq!(
            list(filter.clone(), search.clone()).await,
            expected,
            "{filter} {search}"
        );
    }
    assert_eq!(list(json!(null), json!("launch")).await.len(), 2);

    // An agency's list by client and search together: only that client's.
    let token = app.token(w.agency1.owner, Some(w.agency1.id));
    let data = ok(
        &app,
        &token,
        "query($c: ID) { campaigns(clientId: $c, search: \"ONE\") { totalCount nodes { name } } }",
        json!({ "c": w.nike.to_string() }),
    )
    .await;
    assert_eq!(names(&data["campaigns"]), ["nike one"]);
    assert_eq!(data["campaigns"]["totalCount"], 1);
}

#[tokio::test]
async fn a_cursor_pages_only_the_order_and_filter_it_was_made_for() {
    let (app, w, _su) = setup().await;
    let token = app.token(w.agency1.owner, Some(w.agency1.id));
    let q = "query($o: ListOrder, $s: String, $f: CampaignFilter, $c: ID, $after: String) {
               campaigns(first: 1, orderBy: $o, search: $s, filter: $f, clientId: $c, after: $after) {
                 nodes { name } pageInfo { endCursor } } }";
    let base = json!({ "o": { "field": "NAME", "direction": "ASC" }, "s": "o" });
    let data = ok(&app, &token, q, base.clone()).await;
    let cursor = data["campaigns"]["pageInfo"]["endCursor"].clone();
    // The same list takes it.
    let mut same = base.clone();
    same["after"] = cursor.clone();
    let next = ok(&app, &token, q, same).await;
    assert_eq!(names(&next["campaigns"]).len(), 1);
    assert_ne!(names(&next["campaigns"]), names(&data["campaigns"]));
    // Any other order, search, filter or client refuses it.
    for (change, value) in [
        ("o", json!({ "field": "NAME", "direction": "DESC" })),
        ("o", json!({ "field": "CREATED_AT", "direction": "ASC" })),
        ("o", json!(null)),
        ("s", json!("n")),
        ("s", json!(null)),
        ("f", json!({ "status": ["DRAFT"] })),
        ("c", json!(w.nike.to_string())),
    ] {
        let mut vars = base.clone();
        vars[change] = value.clone();
        vars["after"] = cursor.clone();
        let (status, body) = app.graphql(Some(&token), q, vars).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            error_code(&body),
            Some("BAD_USER_INPUT"),
            "{change} = {value}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "after", "{body}");
        assert!(body["data"].is_null() || body["data"]["campaigns"].is_null());
    }
    // A cursor of another list is refused too.
    let clients = ok(
        &app,
        &token,
        "{ clients(first: 1, orderBy: {field: NAME}) { pageInfo { endCursor } } }",
        json!({}),
    )
    .await;
    let mut vars = base.clone();
    vars["after"] = clients["clients"]["pageInfo"]["endCursor"].clone();
    let (_, body) = app.graphql(Some(&token), q, vars).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}

#[tokio::test]
async fn bad_list_arguments_are_bad_user_input_naming_the_field() {
    let (app, w, _su) = setup().await;
    let token = app.token(w.agency1.owner, Some(w.agency1.id));
    let long = "x".repeat(201);
    let cases = [
        (
            "query($s: String) { campaigns(search: $s) { totalCount } }",
            json!({ "s": long }),
            "search",
        ),
        (
            "query($s: String) { clients(search: $s) { totalCount } }",
            json!({ "s": "tab\there" }),
            "search",
        ),
        (
            "{ campaigns(filter: {createdAfter: \"2026-02-01T00:00:00Z\", createdBefore: \"2026-01-01T00:00:00Z\"}) { totalCount } }",
            json!({}),
            "filter.createdBefore",
        ),
        (
            "{ personas(filter: {createdAfter: \"2026-02-01T00:00:00Z\", createdBefore: \"2026-02-01T00:00:00Z\"}) { totalCount } }",
            json!({}),
            "filter.createdBefore",
        ),
        (
            "{ agentRuns(orderBy: {field: NAME}) { totalCount } }",
            json!({}),
            "orderBy.field",
        ),
    ];
    for (q, vars, field) in cases {
        let (status, body) = app.graphql(Some(&token), q, vars).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{q}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{q}: {body}"
        );
    }
    // An unknown enum value is refused by validation, before any resolver.
    let (_, body) = app
        .graphql(
            Some(&token),
            "{ campaigns(orderBy: {field: BUDGET}) { totalCount } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_array(), "{body}");
}

#[tokio::test]
async fn clients_personas_and_runs_take_the_same_order_filter_and_search() {
    let (app, w, su) = setup().await;
    let org = w.agency1.id;
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug, created_at, archived_at) VALUES
           ('{org}', gen_random_uuid(), 'Acme Shoes', 'acme', '2026-01-05T00:00:00Z', NULL),
           ('{org}', gen_random_uuid(), 'old shoes co', 'old', '2026-01-06T00:00:00Z', now());
         INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name, created_at) VALUES
           ('{org}', gen_random_uuid(), '{nike}', 'PERSONA', 'Runner Rita', '2026-01-01T00:00:00Z'),
           ('{org}', gen_random_uuid(), '{adidas}', 'PERSONA', 'rookie Ron', '2026-01-02T00:00:00Z');",
        nike = w.nike,
        adidas = w.adidas,
    ))
    .await
    .unwrap();
    let token = app.token(w.agency1.owner, Some(org));

    // Clients: archived ones only when asked for, searched and sorted.
    let clients = |extra: &str| {
        format!(
            "SELECT name FROM tenant_b.workspace_entities WHERE org_id = '{org}' AND {extra} ORDER BY name DESC, id DESC"
        )
    };
    for (include, extra) in [
        (false, "archived_at IS NULL AND name ILIKE '%shoes%'"),
        (true, "name ILIKE '%shoes%'"),
    ] {
        let got = walk(
            &app,
            &token,
            "clients",
            ", $s: String, $o: ListOrder, $a: Boolean",
            ", search: $s, orderBy: $o, includeArchived: $a",
            json!({ "s": "SHOES", "o": { "field": "NAME", "direction": "DESC" }, "a": include }),
            1,
            false,
        )
        .await;
        assert_eq!(
            got,
            texts(&su, &clients(extra)).await,
            "includeArchived {include}"
        );
    }
    let recent = ok(
        &app,
        &token,
        "{ clients(filter: {createdAfter: \"2026-01-05T00:00:00Z\", createdBefore: \"2026-01-06T00:00:00Z\"}) { nodes { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(names(&recent["clients"]), ["Acme Shoes"]);

    // Personas: every visible client's, searched and sorted by name.
    let expected = texts(
        &su,
        &format!(
            "SELECT name FROM tenant_b.entity_data WHERE org_id = '{org}' AND kind = 'PERSONA'
               AND name ILIKE '%r%' ORDER BY name, id"
        ),
    )
    .await;
    assert_eq!(expected.len(), 2, "{expected:?}");
    let got = walk(
        &app,
        &token,
        "personas",
        ", $s: String, $o: ListOrder",
        ", search: $s, orderBy: $o",
        json!({ "s": "R", "o": { "field": "NAME", "direction": "ASC" } }),
        1,
        true,
    )
    .await;
    assert_eq!(got, expected);
    // The account manager's personas: nike's only, whatever the search.
    let manager = app.token(w.account_manager, Some(org));
    let data = ok(
        &app,
        &manager,
        "{ personas(search: \"r\", orderBy: {field: NAME}) { nodes { name } } }",
        json!({}),
    )
    .await;
    assert!(
        !names(&data["personas"]).contains(&"rookie Ron".to_owned()),
        "{data}"
    );
    assert!(names(&data["personas"]).contains(&"Runner Rita".to_owned()));

    // Runs: oldest first as well as newest first.
    let runs =
        "query($o: ListOrder) { agentRuns(first: 100, orderBy: $o) { nodes { id createdAt } } }";
    let newest = ok(&app, &token, runs, json!({ "o": null })).await;
    let oldest = ok(
        &app,
        &token,
        runs,
        json!({ "o": { "field": "CREATED_AT", "direction": "ASC" } }),
    )
    .await;
    let mut reversed = newest["agentRuns"]["nodes"].as_array().unwrap().clone();
    reversed.reverse();
    assert!(!reversed.is_empty());
    assert_eq!(&reversed, oldest["agentRuns"]["nodes"].as_array().unwrap());
}

#[tokio::test]
async fn the_audit_log_filters_by_client_actor_operation_and_time_as_the_database_does() {
    let (app, w, su) = setup().await;
    let org = w.agency1.id;
    let owner = app.token(w.agency1.owner, Some(org));
    let strategist = app.token(w.strategist, Some(org));
    for (token, client, name) in [
        (&owner, w.nike, "n1"),
        (&strategist, w.nike, "n2"),
        (&strategist, w.adidas, "a1"),
    ] {
        ok(
            &app,
            token,
            "mutation($c: ID, $n: String!) { createCampaign(input: {clientId: $c, name: $n}) { id } }",
            json!({ "c": client.to_string(), "n": name }),
        )
        .await;
    }
    let q = "query($f: AuditLogFilter, $after: String) { auditLog(first: 2, filter: $f, after: $after) {
               totalCount nodes { id } pageInfo { hasNextPage endCursor } } }";
    let cases = [
        (
            json!({ "clientId": w.nike.to_string() }),
            format!("client_id = '{}'", w.nike),
        ),
        (
            json!({ "actorId": w.strategist.to_string() }),
            format!("actor_user_id = '{}'", w.strategist),
        ),
        (
            json!({ "operation": "createCampaign" }),
            "operation = 'createCampaign'".to_owned(),
        ),
        (
            json!({ "operation": "createCampaign", "clientId": w.nike.to_string(), "actorId": w.agency1.owner.to_string() }),
            format!(
                "operation = 'createCampaign' AND client_id = '{}' AND actor_user_id = '{}'",
                w.nike, w.agency1.owner
            ),
        ),
        (
            json!({ "from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z" }),
            "true".to_owned(),
        ),
        (
            json!({ "from": "2999-01-01T00:00:00Z" }),
            "false".to_owned(),
        ),
        (
            json!({ "clientId": w.puma.to_string() }),
            "false".to_owned(),
        ),
    ];
    for (filter, sql) in cases {
        let expected = texts(
            &su,
            &format!(
                "SELECT id::text FROM public.audit_log WHERE org_id = '{org}' AND {sql} ORDER BY created_at DESC, id DESC"
            ),
        )
        .await;
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = ok(&app, &owner, q, json!({ "f": filter, "after": after })).await;
            let conn = &data["auditLog"];
            assert_eq!(
                conn["totalCount"].as_u64(),
                Some(expected.len() as u64),
                "{filter}"
            );
            for n in conn["nodes"].as_array().unwrap() {
                got.push(n["id"].as_str().unwrap().to_owned());
            }
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(got, expected, "{filter}");
    }
    assert!(
        scalar(&su, &format!("SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' AND operation = 'createCampaign'")).await >= 3
    );
    // A page's cursor does not page another filter; bad values name their field.
    let data = ok(
        &app,
        &owner,
        q,
        json!({ "f": { "operation": "createCampaign" } }),
    )
    .await;
    let cursor = data["auditLog"]["pageInfo"]["endCursor"].clone();
    for (vars, field) in [
        (
            json!({ "f": { "operation": "updateCampaign" }, "after": cursor }),
            "after",
        ),
        (json!({ "f": null, "after": cursor }), "after"),
        (
            json!({ "f": { "operation": "drop table; --" } }),
            "filter.operation",
        ),
        (json!({ "f": { "actorId": "someone" } }), "filter.actorId"),
        (
            json!({ "f": { "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" } }),
            "filter.to",
        ),
    ] {
        let (_, body) = app.graphql(Some(&owner), q, vars.clone()).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{vars}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
}
