//! GraphQL over HTTP as the specification has it, and the abuse cases: each
//! bad request is refused with its status and code while a well-formed
//! request of another tenant, sent at the same time, is served.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use strata_tests::scalar;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

const GQL: &str = "application/graphql-response+json";

async fn app_with_world(app: TestApp) -> (TestApp, World, DatabaseConnection) {
    let (world, su) = World::on(&app).await;
    (app, world, su)
}

/// A raw POST: status, content type and JSON body (Null if none).
async fn post_raw(
    app: &TestApp,
    token: Option<&str>,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    if let Some(a) = accept {
        req = req.header(ACCEPT, a);
    }
    let resp = req.send().await.unwrap();
    split(resp).await
}

async fn split(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, ct, body)
}

async fn get_raw(app: &TestApp, token: &str, params: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/graphql", app.base))
        .query(params)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn q(query: &str) -> String {
    json!({ "query": query }).to_string()
}

#[tokio::test]
async fn content_negotiation_and_status_codes_follow_graphql_over_http() {
    let (app, w, su) = app_with_world(TestApp::spawn().await).await;
    let t = app.token(w.sme1.owner, Some(w.sme1.id));
    let json_ct = Some("application/json");

    // A result: 200, in the media type asked for.
    let (s, ct, body) = post_raw(
        &app,
        Some(&t),
        json_ct,
        Some(GQL),
        q("{ organization { id } }"),
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, GQL), "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
    let (s, ct, _) = post_raw(&app, Some(&t), json_ct, None, q("{ organization { id } }")).await;
    assert_eq!((s, ct.as_str()), (200, "application/json"));

    // Parse and validation errors: 400 with graphql-response+json, 200 with
    // the legacy type.
    for bad in ["{ organization { id ", "{ organization { nope } }"] {
        let (s, ct, body) = post_raw(&app, Some(&t), json_ct, Some(GQL), q(bad)).await;
        assert_eq!((s, ct.as_str()), (400, GQL), "{bad}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{bad}: {body}");
        // A request error has no data entry at all.
        assert!(body.get("data").is_none(), "{body}");
        let (s, _, body) =
            post_raw(&app, Some(&t), json_ct, Some("application/json"), q(bad)).await;
        assert_eq!(s, 200, "{bad}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    }
    // A field error during execution is still a result: 200.
    let (s, _, body) = post_raw(
        &app,
        Some(&t),
        json_ct,
        Some(GQL),
        q("{ campaign(id: \"not-a-uuid\") { id } }"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(!body["errors"].as_array().unwrap().is_empty());

    // Not JSON: 415, whatever the body.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (s, _, body) = post_raw(&app, Some(&t), ct, None, q("{ organization { id } }")).await;
        assert_eq!(s, 415, "{ct:?}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    }
    let (s, _, _) = post_raw(
        &app,
        Some(&t),
        Some("application/json; charset=latin1"),
        None,
        q("{ organization { id } }"),
    )
    .await;
    assert_eq!(s, 415);
    // JSON with a UTF-8 charset is fine.
    let (s, _, _) = post_raw(
        &app,
        Some(&t),
        Some("application/json; charset=utf-8"),
        None,
        q("{ organization { id } }"),
    )
    .await;
    assert_eq!(s, 200);
    // Accepting neither JSON type: 406.
    let (s, _, _) = post_raw(
        &app,
        Some(&t),
        json_ct,
        Some("text/html"),
        q("{ organization { id } }"),
    )
    .await;
    assert_eq!(s, 406);

    // GET runs queries...
    let (s, _, body) = split(
        get_raw(
            &app,
            &t,
            &[
                (
                    "query",
                    "query($f: Int) { campaigns(first: $f) { totalCount } }",
                ),
                ("variables", "{\"f\": 1}"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["data"]["campaigns"]["totalCount"].as_i64().unwrap() > 0);
    // ...and refuses mutations with 405, running nothing.
    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let resp = get_raw(
        &app,
        &t,
        &[(
            "query",
            "mutation { createCampaign(input: {name: \"via get\"}) { id } }",
        )],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let (_, _, body) = split(resp).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    // Other methods are not routes of /graphql.
    let put = reqwest::Client::new()
        .put(format!("{}/graphql", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 405);

    // Batches: an array in, an array out, each operation on its own.
    let batch = json!([
        { "query": "{ organization { id } }" },
        { "query": "{ nope }" },
    ])
    .to_string();
    let (s, _, body) = post_raw(&app, Some(&t), json_ct, None, batch).await;
    assert_eq!(s, 200, "{body}");
    let arr = body.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["data"]["organization"]["id"], w.sme1.id.to_string());
    assert_eq!(error_code(&arr[1]), Some("BAD_USER_INPUT"));
}

/// Sends `bad`, and at the same time a well-formed request of another
/// tenant; returns the bad one's status and body after checking the other
/// succeeded.
async fn refused_while_others_are_served(
    app: &TestApp,
    other_token: &str,
    bad: impl std::future::Future<Output = (u16, String, Value)>,
) -> (u16, Value) {
    let good = app.graphql(Some(other_token), "{ organization { id type } }", json!({}));
    let ((status, _, body), (gs, gbody)) = tokio::join!(bad, good);
    assert_eq!(gs, 200, "{gbody}");
    assert_eq!(gbody["data"]["organization"]["type"], "SME", "{gbody}");
    (status, body)
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_while_other_tenants_are_served() {
    let (app, w, su) = app_with_world(TestApp::spawn().await).await;
    let t = app.token(w.agency1.owner, Some(w.agency1.id));
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let json_ct = Some("application/json");
    let campaigns_before = scalar(&su, "SELECT count(*) FROM tenant_b.campaigns").await;

    // What, the body, its content type, the status and code expected.
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            b"{\"query\": \"{ organization { id } }\"".to_vec(),
            json_ct,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "invalid UTF-8",
            b"{\"query\": \"{ me \xff\xfe }\"}".to_vec(),
            json_ct,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "not a request",
            b"[1, 2, 3]".to_vec(),
            json_ct,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "a JSON string",
            b"\"{ organization { id } }\"".to_vec(),
            json_ct,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "wrong content type",
            q("{ organization { id } }").into_bytes(),
            Some("text/plain"),
            415,
            "BAD_USER_INPUT",
        ),
        (
            "a huge body",
            q(&format!(
                "{{ me {{ role }} }} # {}",
                "x".repeat(3 * 1024 * 1024)
            ))
            .into_bytes(),
            json_ct,
            413,
            "QUERY_TOO_COMPLEX",
        ),
        (
            "deeply nested JSON",
            format!(
                "{{\"query\": \"{{ me {{ role }} }}\", \"variables\": {}{}}}",
                "{\"a\":".repeat(5000),
                "}".repeat(5000)
            )
            .into_bytes(),
            json_ct,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "a batch too large",
            serde_json::to_vec(&vec![json!({"query": "{ organization { id } }"}); 11]).unwrap(),
            json_ct,
            400,
            "QUERY_TOO_COMPLEX",
        ),
    ];
    for (what, body, ct, status, code) in cases {
        let (s, b) =
            refused_while_others_are_served(&app, &other, post_raw(&app, Some(&t), ct, None, body))
                .await;
        assert_eq!(s, status, "{what}: {b}");
        assert_eq!(error_code(&b), Some(code), "{what}: {b}");
    }

    // Documents that parse but ask too much: an error with a code, nothing
    // executed.
    let deep = format!(
        "{{ clients {{ edges {{ node {{ {} id {} }} }} }} }}",
        "campaigns { edges { node { client { ".repeat(6),
        "} } } }".repeat(6)
    );
    let aliases = format!(
        "{{ {} }}",
        (0..1000)
            .map(|i| format!("a{i}: organization {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let root_fields = format!(
        "{{ {} }}",
        (0..40)
            .map(|i| format!("o{i}: organization {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let wide = "{ clients(first: 100) { edges { node { campaigns(first: 100) { edges { node { outputs(first: 100) { edges { node { id } } } } } } } } } }".to_owned();
    let mutation_aliases = format!(
        "mutation {{ {} }}",
        (0..60)
            .map(|i| format!(
                "c{i}: createCampaign(input: {{name: \"spam {i}\", clientId: \"{}\"}}) {{ id }}",
                w.nike
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut bomb = String::from("query { ...F30 } fragment F0 on Query { organization { id } }");
    for i in 1..=30 {
        bomb.push_str(&format!(
            " fragment F{i} on Query {{ ...F{j} ...F{j} }}",
            j = i - 1
        ));
    }
    let nested = format!("{{ organization {} }}", "{ a ".repeat(60) + &"}".repeat(60));
    let directives = format!(
        "{{ organization {} {{ id }} }}",
        "@include(if: true) ".repeat(50)
    );
    for (what, query) in [
        ("a fragment bomb", bomb),
        ("selections nested 60 deep", nested),
        ("50 directives on a field", directives),
        ("a deep query", deep),
        ("1,000 aliases", aliases),
        ("40 root fields", root_fields),
        ("a wide query", wide),
        ("60 aliased mutations", mutation_aliases),
    ] {
        let (s, b) = refused_while_others_are_served(
            &app,
            &other,
            post_raw(&app, Some(&t), json_ct, Some(GQL), q(&query)),
        )
        .await;
        assert_eq!(s, 400, "{what}: {b}");
        assert_eq!(error_code(&b), Some("QUERY_TOO_COMPLEX"), "{what}: {b}");
        assert!(b.get("data").is_none_or(Value::is_null), "{what}: {b}");
    }

    // Giant variables under the body limit: refused field by field.
    let body = json!({
        "query": "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
        "variables": { "i": { "name": "n".repeat(900 * 1024), "clientId": w.nike.to_string() } },
    })
    .to_string();
    let (s, b) = refused_while_others_are_served(
        &app,
        &other,
        post_raw(&app, Some(&t), json_ct, None, body),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(error_code(&b), Some("BAD_USER_INPUT"), "{b}");
    assert_eq!(b["errors"][0]["extensions"]["field"], "name", "{b}");

    // Nothing of the above wrote anything, and the server is healthy.
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM tenant_b.campaigns").await,
        campaigns_before
    );
    assert_eq!(app.get("/readyz").await, 200);
}

#[tokio::test]
async fn persisted_queries_are_registered_by_hash_and_reused() {
    let (app, w, _su) = app_with_world(TestApp::spawn().await).await;
    let t = app.token(w.sme1.owner, Some(w.sme1.id));
    let query = "query Org { organization { id name } }";
    let hash = strata_server::documents::sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let json_ct = Some("application/json");

    let hash_only = json!({ "extensions": ext }).to_string();
    let (s, _, body) = post_raw(&app, Some(&t), json_ct, None, hash_only.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");

    // Without a valid credential nothing is kept, nor from an invalid
    // document.
    let register = json!({ "query": query, "extensions": ext }).to_string();
    let (s, _, _) = post_raw(&app, None, json_ct, None, register.clone()).await;
    assert_eq!(s, 401);
    let invalid = "{ organization { nope } }";
    let invalid_ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": strata_server::documents::sha256_hex(invalid) } });
    let (_, _, body) = post_raw(
        &app,
        Some(&t),
        json_ct,
        None,
        json!({ "query": invalid, "extensions": invalid_ext }).to_string(),
    )
    .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    for (h, what) in [
        (&hash_only, "anonymous"),
        (&json!({ "extensions": invalid_ext }).to_string(), "invalid"),
    ] {
        let (_, _, body) = post_raw(&app, Some(&t), json_ct, None, h.clone()).await;
        assert_eq!(
            body["errors"][0]["message"], "PersistedQueryNotFound",
            "{what}: {body}"
        );
    }

    let wrong = json!({ "query": "{ organization { id } }", "extensions": ext }).to_string();
    let (_, _, body) = post_raw(&app, Some(&t), json_ct, None, wrong).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");

    let (s, _, body) = post_raw(&app, Some(&t), json_ct, None, register.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());

    let (_, _, body) = post_raw(&app, Some(&t), json_ct, None, hash_only).await;
    assert_eq!(
        body["data"]["organization"]["id"],
        w.sme1.id.to_string(),
        "{body}"
    );
    // Over GET too, the usual way to make persisted queries cacheable.
    let (s, _, body) = split(get_raw(&app, &t, &[("extensions", &ext.to_string())]).await).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
    // Persisted queries are kept per organization: another tenant's hash
    // is unknown, as one nobody registered is; once it sends the text
    // itself, it runs the document on its own data.
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let (_, _, body) =
        split(get_raw(&app, &other, &[("extensions", &ext.to_string())]).await).await;
    assert_eq!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );
    let (_, _, body) = post_raw(&app, Some(&other), json_ct, None, register.clone()).await;
    assert_eq!(body["data"]["organization"]["id"], w.sme2.id.to_string());
    let (s, _, body) =
        split(get_raw(&app, &other, &[("extensions", &ext.to_string())]).await).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme2.id.to_string());
}

#[tokio::test]
async fn in_allow_list_mode_only_registered_operations_run() {
    let dir = std::env::temp_dir().join(format!("strata-allow-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("operations.json");
    let registered = "query Org { organization { id } }";
    std::fs::write(
        &manifest,
        json!({ "operations": [{ "id": strata_server::documents::sha256_hex(registered), "name": "Org", "type": "query", "body": registered }] })
            .to_string(),
    )
    .unwrap();
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            allow_list: Some(manifest.clone()),
            ..Default::default()
        })
        .spawn()
        .await;
    let (app, w, su) = app_with_world(app).await;
    let t = app.token(w.sme1.owner, Some(w.sme1.id));

    let (s, body) = app.graphql(Some(&t), registered, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
    let by_hash = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": strata_server::documents::sha256_hex(registered) } } }).to_string();
    let (_, _, body) = post_raw(&app, Some(&t), Some("application/json"), None, by_hash).await;
    assert_eq!(
        body["data"]["organization"]["id"],
        w.sme1.id.to_string(),
        "{body}"
    );

    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    for other in [
        "{ organization { id name } }",
        "mutation { createCampaign(input: {name: \"not registered\"}) { id } }",
    ] {
        let (_, body) = app.graphql(Some(&t), other, json!({})).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("registered")
        );
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn slow_statements_and_slow_requests_end_with_a_code_and_write_nothing() {
    // The statement timeout: a request blocked behind a lock is cancelled by
    // the database.
    let app = TestApp::builder()
        .statement_timeout(Duration::from_millis(300))
        .spawn()
        .await;
    let (app, w, su) = app_with_world(app).await;
    let t = app.token(w.sme1.owner, Some(w.sme1.id));
    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
    let locker = su.begin().await.unwrap();
    locker
        .execute_unprepared("LOCK TABLE public.campaigns IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (s, body) = app
        .graphql(Some(&t), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    let (_, body) = app
        .graphql(
            Some(&t),
            "mutation { createCampaign(input: {name: \"blocked\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    // Other work goes on meanwhile.
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    let (s, body) = app
        .graphql(Some(&other), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    locker.rollback().await.unwrap();
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before
    );

    // The request timeout: shorter than the statement timeout here.
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            request_timeout: Duration::from_millis(300),
            ..Default::default()
        })
        .spawn()
        .await;
    let (app, w, su) = app_with_world(app).await;
    let t = app.token(w.sme1.owner, Some(w.sme1.id));
    let before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let locker = su.begin().await.unwrap();
    locker
        .execute_unprepared("LOCK TABLE public.campaigns IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (s, body) = app
        .graphql(
            Some(&t),
            "mutation { createCampaign(input: {name: \"too slow\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(s, 504, "{body}");
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    locker.rollback().await.unwrap();
    // The abandoned transaction was rolled back: its campaign never appears.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        before
    );
    let (s, body) = app
        .graphql(Some(&t), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    let own = scalar(
        &su,
        &format!(
            "SELECT count(*) FROM public.campaigns WHERE org_id = '{}'",
            w.sme1.id
        ),
    )
    .await;
    assert_eq!(body["data"]["campaigns"]["totalCount"], own);
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            cors_origins: vec!["https://app.example.com".into()],
            ..Default::default()
        })
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Without configuration, no CORS headers at all.
    let plain = TestApp::spawn().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/graphql", plain.base))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ organization { id } }" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn introspection_and_suggestions_can_be_turned_off() {
    let open = TestApp::spawn().await;
    let closed = TestApp::builder()
        .limits(strata_graphql::Limits {
            introspection: false,
            suggestions: false,
            ..Default::default()
        })
        .spawn()
        .await;
    let (open, w, _) = app_with_world(open).await;
    let su = closed.test_db.superuser().await;
    let wc = World::seed(&closed.db, &su).await;
    let t_open = open.token(w.sme1.owner, Some(w.sme1.id));
    let t_closed = closed.token(wc.sme1.owner, Some(wc.sme1.id));
    let introspect = "{ __schema { queryType { name } } }";
    let typo = "{ organizaton { id } }";

    let (_, body) = open.graphql(Some(&t_open), introspect, json!({})).await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
    let (_, body) = open.graphql(Some(&t_open), typo, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("organization"),
        "{body}"
    );

    let (_, body) = closed.graphql(Some(&t_closed), introspect, json!({})).await;
    // The schema is not described: the field answers nothing.
    assert!(
        body["data"].is_null() || body["data"]["__schema"].is_null(),
        "{body}"
    );
    let (_, body) = closed
        .graphql(
            Some(&t_closed),
            "{ __type(name: \"Campaign\") { fields { name } } }",
            json!({}),
        )
        .await;
    assert!(
        body["data"].is_null() || body["data"]["__type"].is_null(),
        "{body}"
    );
    let (_, body) = closed.graphql(Some(&t_closed), typo, json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn one_organizations_slow_requests_wait_their_turn_and_others_pass() {
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            max_inflight_per_org: 1,
            ..Default::default()
        })
        .spawn()
        .await;
    let (app, w, su) = app_with_world(app).await;
    let app = std::sync::Arc::new(app);
    let t1 = app.token(w.sme1.owner, Some(w.sme1.id));
    let t2 = app.token(w.sme2.owner, Some(w.sme2.id));
    let locker = su.begin().await.unwrap();
    locker
        .execute_unprepared("LOCK TABLE public.campaigns IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // SME 1's first request waits on the lock, holding its organization's
    // only turn; its second request waits for that turn.
    let slow = {
        let (app, t) = (app.clone(), t1.clone());
        tokio::spawn(async move {
            app.graphql(Some(&t), "{ campaigns { totalCount } }", json!({}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = {
        let (app, t) = (app.clone(), t1.clone());
        tokio::spawn(async move {
            app.graphql(Some(&t), "{ organization { id } }", json!({}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SME 2 is served meanwhile.
    let (s, body) = app
        .graphql(Some(&t2), "{ organization { id } }", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme2.id.to_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!slow.is_finished());
    assert!(
        !queued.is_finished(),
        "the second request did not wait its turn"
    );
    locker.rollback().await.unwrap();
    let (s, body) = slow.await.unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) = queued.await.unwrap();
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
}

/// A body sent a byte at a time is cut off once the body-read timeout has
/// passed, with 408 and a code, while other tenants are served.
#[tokio::test]
async fn a_trickled_body_is_refused_with_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            body_read_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .spawn()
        .await;
    let (app, w, _su) = app_with_world(app).await;
    let t = app.token(w.agency1.owner, Some(w.agency1.id));
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let address = app.base.trim_start_matches("http://").to_owned();
    let slow = async {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        // One byte every 100 ms: the body would take 100 s to arrive.
        let trickle = tokio::spawn(async move {
            for _ in 0..999 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if writer.write_all(b" ").await.is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        // A guard against hanging, not a measurement.
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        })
        .await;
        trickle.abort();
        assert!(read.is_ok(), "no answer to a trickled body");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (
            status,
            String::new(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let (s, body) = refused_while_others_are_served(&app, &other, slow).await;
    assert_eq!(s, 408, "{body}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}

/// Each query limit on its own: the same shape is served or refused by
/// its `first` alone; depth alone; batching off.
#[tokio::test]
async fn each_query_limit_refuses_on_its_own() {
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            max_batch: 0,
            ..Default::default()
        })
        .spawn()
        .await;
    let (app, w, _su) = app_with_world(app).await;
    let t = app.token(w.agency1.owner, Some(w.agency1.id));
    let json_ct = Some("application/json");
    let post = |query: String| post_raw(&app, Some(&t), json_ct, Some(GQL), q(&query));

    // Complexity grows with `first`: one shape, ten levels deep (within
    // the depth limit), served with 2 items a list and refused with 100.
    let shape = |n: u32| {
        format!(
            "{{ clients(first: {n}) {{ edges {{ node {{ campaigns(first: {n}) {{ edges {{ node {{ outputs(first: {n}) {{ edges {{ node {{ id }} }} }} }} }} }} }} }} }} }}"
        )
    };
    let (s, _, body) = post(shape(2)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["data"]["clients"]["edges"].is_array(), "{body}");
    let (s, _, body) = post(shape(100)).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.to_lowercase().contains("too complex"), "{message}");

    // Depth alone: one item per list, fifteen levels.
    let deep = "{ clients(first: 1) { edges { node { campaigns(first: 1) { edges { node { client { campaigns(first: 1) { edges { node { client { campaigns(first: 1) { edges { node { id } } } } } } } } } } } } } } }";
    let (s, _, body) = post(deep.to_owned()).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.to_lowercase().contains("too deep"), "{message}");
    // Twelve levels pass.
    let (s, _, body) = post(
        "{ clients(first: 1) { edges { node { campaigns(first: 1) { edges { node { client { campaigns(first: 1) { edges { node { id } } } } } } } } } } }".to_owned(),
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // Batching off: an array is refused with a code; one operation runs.
    let batch = json!([{ "query": "{ organization { id } }" }]).to_string();
    let (s, _, body) = post_raw(&app, Some(&t), json_ct, None, batch).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("batched requests are turned off"),
        "{message}"
    );
    let (s, _, body) = post("{ organization { id } }".to_owned()).await;
    assert_eq!(s, 200, "{body}");
}
