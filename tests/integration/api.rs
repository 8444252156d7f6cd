//! The API over real HTTP: authentication, the first queries, isolation of
//! ids, and the schema snapshot.

use strata_domain::UserId;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

async fn app_with_world() -> (TestApp, World) {
    let app = TestApp::spawn().await;
    let (world, _su) = World::on(&app).await;
    (app, world)
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await, 200);
    assert_eq!(app.get("/readyz").await, 200);
    assert_eq!(app.get("/metrics").await, 200);
    assert_eq!(app.get("/").await, 200);
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_401_unauthenticated_and_get_no_data() {
    let (app, w) = app_with_world().await;
    let q = "{ organization { id name } }";
    let forged = strata_server::auth::mint(
        &secrecy::SecretString::from("another-secret-another-secret-another"),
        w.sme1.owner,
        Some(w.sme1.id),
        None,
        std::time::Duration::from_secs(60),
        None,
        None,
    )
    .unwrap();
    let not_a_member = app.token(w.sme1.owner, Some(w.sme2.id));
    // Expired an hour ago: well beyond the verifier's leeway.
    let past = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let claims = serde_json::json!({
            "sub": w.sme1.owner.to_string(),
            "org_id": w.sme1.id.to_string(),
            "exp": chrono::Utc::now().timestamp() - 3600,
        });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(strata_tests::SECRET.as_bytes()),
        )
        .unwrap()
    };
    for (what, token) in [
        ("none", None),
        ("malformed", Some("not-a-jwt")),
        ("bad signature", Some(forged.as_str())),
        ("not a member", Some(not_a_member.as_str())),
        ("expired", Some(past.as_str())),
    ] {
        let (status, body) = app.graphql(token, q, serde_json::json!({})).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}");
        assert!(body.get("data").is_none_or(|d| d.is_null()), "{what}");
    }
    // The same token, unexpired, is let in: the refusal above was the expiry.
    let fresh = app.token(w.sme1.owner, Some(w.sme1.id));
    let (status, body) = app.graphql(Some(&fresh), q, serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
}

#[tokio::test]
async fn me_and_organization_describe_the_callers_own_world() {
    let (app, w) = app_with_world().await;
    let token = app.token(w.account_manager, Some(w.agency1.id));
    let (status, body) = app
        .graphql(
            Some(&token),
            "{ me { user { id } role organization { id type } memberships { organizationId role clientIds } }
               organization { id type } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["role"], "ACCOUNT_MANAGER");
    assert_eq!(
        body["data"]["me"]["user"]["id"],
        w.account_manager.to_string()
    );
    assert_eq!(body["data"]["organization"]["id"], w.agency1.id.to_string());
    assert_eq!(body["data"]["organization"]["type"], "AGENCY");
    assert_eq!(
        body["data"]["me"]["memberships"][0]["clientIds"],
        serde_json::json!([w.nike.to_string()])
    );
}

#[tokio::test]
async fn a_new_user_is_provisioned_and_can_create_an_organization_it_then_owns() {
    let app = TestApp::spawn().await;
    let user = UserId::generate();
    let token = app.token(user, None);
    let (status, body) = app
        .graphql(
            Some(&token),
            "{ me { user { id } organization { id } memberships { role } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["user"]["id"], user.to_string());
    assert!(body["data"]["me"]["organization"].is_null());

    let (_, body) = app
        .graphql(
            Some(&token),
            "{ organization { id } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    let create =
        "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id type slug } }";
    let (_, body) = app
        .graphql(
            Some(&token),
            create,
            serde_json::json!({ "i": { "name": "Acme", "slug": "acme", "type": "SME" } }),
        )
        .await;
    assert_eq!(body["data"]["createOrganization"]["type"], "SME", "{body}");
    let (_, again) = app
        .graphql(
            Some(&token),
            create,
            serde_json::json!({ "i": { "name": "Acme", "slug": "acme", "type": "AGENCY" } }),
        )
        .await;
    assert_eq!(error_code(&again), Some("BAD_USER_INPUT"), "{again}");
    assert_eq!(again["errors"][0]["extensions"]["field"], "slug");
    let text = again.to_string();
    assert!(
        !text.contains("organizations_slug_key") && !text.contains("23505"),
        "{text}"
    );

    let (_, bad) = app
        .graphql(
            Some(&token),
            create,
            serde_json::json!({ "i": { "name": "Acme", "slug": "Not A Slug", "type": "SME" } }),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
    assert_eq!(bad["errors"][0]["extensions"]["field"], "slug");

    let (_, body) = app
        .graphql(
            Some(&token),
            "{ me { role organization { slug } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"]["role"], "OWNER", "{body}");
    assert_eq!(body["data"]["me"]["organization"]["slug"], "acme");
}

#[tokio::test]
async fn another_tenants_ids_behave_like_missing_ones_and_writes_with_them_change_nothing() {
    let (app, w) = app_with_world().await;
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let (_, body) = app
        .graphql(
            Some(&sme),
            "query($id: ID!) { campaign(id: $id) { id } }",
            serde_json::json!({ "id": w.sme2.campaigns[0].to_string() }),
        )
        .await;
    assert!(body["data"]["campaign"].is_null(), "{body}");
    assert!(body.get("errors").is_none());

    let am = app.token(w.account_manager, Some(w.agency1.id));
    for (q, id) in [
        (
            "query($id: ID!) { campaign(id: $id) { id } }",
            w.adidas_campaigns[0].to_string(),
        ),
        (
            "query($id: ID!) { client(id: $id) { id } }",
            w.adidas.to_string(),
        ),
        (
            "query($id: ID!) { client(id: $id) { id } }",
            w.puma.to_string(),
        ),
    ] {
        let (_, body) = app
            .graphql(Some(&am), q, serde_json::json!({ "id": id }))
            .await;
        let first = body["data"].as_object().unwrap().values().next().unwrap();
        assert!(first.is_null(), "{q}: {body}");
    }
    let (_, body) = app
        .graphql(
            Some(&am),
            "{ client(slug: \"adidas\") { id } }",
            serde_json::json!({}),
        )
        .await;
    assert!(body["data"]["client"].is_null());

    let su = app.test_db.superuser().await;
    let count = |sql: String| {
        let su = su.clone();
        async move {
            use sea_orm::ConnectionTrait;
            su.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
        }
    };
    let before = count("SELECT count(*) FROM tenant_b.campaigns".into()).await;
    let audit_before = count("SELECT count(*) FROM public.audit_log".into()).await;
    let create = "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }";
    for (token, client) in [(&am, w.adidas), (&am, w.puma)] {
        let (_, body) = app
            .graphql(
                Some(token),
                create,
                serde_json::json!({ "i": { "name": "sneaky", "clientId": client.to_string() } }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    assert_eq!(
        count("SELECT count(*) FROM tenant_b.campaigns".into()).await,
        before
    );
    assert_eq!(
        count("SELECT count(*) FROM public.audit_log".into()).await,
        audit_before
    );

    // The same call on an assigned client works and writes one audit row.
    let (_, body) = app
        .graphql(
            Some(&am),
            create,
            serde_json::json!({ "i": { "name": "allowed", "clientId": w.nike.to_string() } }),
        )
        .await;
    let id = body["data"]["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        count("SELECT count(*) FROM tenant_b.campaigns".into()).await,
        before + 1
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM public.audit_log WHERE operation = 'createCampaign' AND target_id = '{id}' \
             AND actor_user_id = '{}' AND client_id = '{}' AND org_id = '{}'",
            w.account_manager, w.nike, w.agency1.id
        ))
        .await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM public.audit_log".into()).await,
        audit_before + 1
    );
}

#[tokio::test]
async fn a_viewer_cannot_write_and_an_sme_cannot_name_a_client() {
    let (app, w) = app_with_world().await;
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let create = "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }";
    let (_, body) = app
        .graphql(
            Some(&viewer),
            create,
            serde_json::json!({ "i": { "name": "nope", "clientId": w.nike.to_string() } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let (_, body) = app
        .graphql(
            Some(&sme),
            create,
            serde_json::json!({ "i": { "name": "nope", "clientId": w.nike.to_string() } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "clientId");
}

#[tokio::test]
async fn pages_are_stable_and_bounded() {
    let (app, w) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let q = "query($after: String) { campaigns(first: 3, after: $after) { totalCount edges { cursor node { id } } pageInfo { hasNextPage } } }";
    let (_, first) = app.graphql(Some(&owner), q, serde_json::json!({})).await;
    let conn = &first["data"]["campaigns"];
    assert_eq!(conn["totalCount"], 4, "{first}");
    assert_eq!(conn["edges"].as_array().unwrap().len(), 3);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let cursor = conn["edges"][2]["cursor"].as_str().unwrap();
    let (_, second) = app
        .graphql(Some(&owner), q, serde_json::json!({ "after": cursor }))
        .await;
    let rest = second["data"]["campaigns"]["edges"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        second["data"]["campaigns"]["pageInfo"]["hasNextPage"],
        false
    );
    let (_, too_many) = app
        .graphql(
            Some(&owner),
            "{ campaigns(first: 101) { totalCount } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(error_code(&too_many), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn walking_every_page_covers_all_rows_newest_first_without_overlap() {
    use sea_orm::ConnectionTrait;
    let (app, w) = app_with_world().await;
    let su = app.test_db.superuser().await;
    // 25 more campaigns; groups of three share a creation time, so the order
    // must fall back on the id to stay stable.
    su.execute_unprepared(&format!(
        "INSERT INTO public.campaigns (org_id, id, name, created_at)
           SELECT '{}', gen_random_uuid(), 'page ' || i, now() - (i / 3) * interval '1 minute'
           FROM generate_series(1, 25) AS i",
        w.sme1.id
    ))
    .await
    .unwrap();
    let expected: Vec<String> = su
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT id::text FROM public.campaigns WHERE org_id = '{}' ORDER BY created_at DESC, id DESC",
                w.sme1.id
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert_eq!(expected.len(), 27);
    let token = app.token(w.sme1.owner, Some(w.sme1.id));

    // No `first`: a page of 20.
    let (_, body) = app
        .graphql(
            Some(&token),
            "{ campaigns { totalCount edges { node { id } } pageInfo { hasNextPage endCursor } } }",
            serde_json::json!({}),
        )
        .await;
    let conn = &body["data"]["campaigns"];
    assert_eq!(conn["totalCount"], 27, "{body}");
    assert_eq!(conn["edges"].as_array().unwrap().len(), 20, "{body}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true, "{body}");

    // Walking the cursors seven at a time visits every row once, in order.
    let q = "query($after: String) { campaigns(first: 7, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut seen: Vec<String> = Vec::new();
    let mut after = serde_json::Value::Null;
    let mut pages = 0;
    loop {
        let (status, body) = app
            .graphql(Some(&token), q, serde_json::json!({ "after": after }))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        let conn = &body["data"]["campaigns"];
        let edges = conn["edges"].as_array().unwrap();
        assert!(edges.len() <= 7, "{body}");
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        assert!(pages <= 5, "the walk does not end: {seen:?}");
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        assert_eq!(
            conn["pageInfo"]["endCursor"],
            edges.last().unwrap()["cursor"]
        );
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, expected, "every row once, newest first, ties by id");

    // Bad paging arguments name the argument.
    for (args, field) in [
        ("after: \"garbage\"", "after"),
        ("first: -1", "first"),
        ("first: 101", "first"),
    ] {
        let (status, body) = app
            .graphql(
                Some(&token),
                &format!("{{ campaigns({args}) {{ totalCount }} }}"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "{args}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{args}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{args}: {body}"
        );
        assert!(body["data"].is_null(), "{args}: {body}");
    }
}

/// Fails if `body` shows anything of the database: SQLSTATEs, constraint,
/// table or column names, or any of `values`.
fn assert_reveals_nothing(what: &str, body: &serde_json::Value, values: &[&str]) {
    let text = body.to_string();
    for leak in [
        "SQLSTATE",
        "23503",
        "23505",
        "42501",
        "constraint",
        "violates",
        "_pkey",
        "_fkey",
        "_key",
        "memberships",
        "users",
        "workspace_entities",
        "tenant_b",
        "row-level",
        "policy",
        "Key (",
        "detail",
    ] {
        assert!(!text.contains(leak), "{what} reveals {leak:?}: {text}");
    }
    for v in values {
        assert!(!text.contains(v), "{what} reveals {v}: {text}");
    }
}

#[tokio::test]
async fn database_errors_reach_clients_as_codes_without_their_details() {
    use sea_orm::ConnectionTrait;
    let (app, w) = app_with_world().await;
    let su = app.test_db.superuser().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let audit = "SELECT count(*) FROM public.audit_log";
    let audit_before = strata_tests::scalar(&su, audit).await;

    // A foreign-key violation: a member who is no user.
    let nobody = UserId::generate().to_string();
    let add = "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { userId } }";
    let (status, body) = app
        .graphql(Some(&owner), add, serde_json::json!({ "u": nobody }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_reveals_nothing("a foreign-key violation", &body, &[nobody.as_str()]);
    assert_eq!(
        strata_tests::scalar(
            &su,
            &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{nobody}'")
        )
        .await,
        0
    );

    // Unique violations: a member added twice, a slug taken by a sibling.
    let member = w.strategist.to_string();
    let (_, body) = app
        .graphql(Some(&owner), add, serde_json::json!({ "u": member }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "userId", "{body}");
    assert_reveals_nothing("a duplicate membership", &body, &[member.as_str()]);
    let (_, body) = app
        .graphql(
            Some(&owner),
            "mutation($id: ID!) { updateClient(input: {id: $id, slug: \"adidas\"}) { slug } }",
            serde_json::json!({ "id": w.nike.to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "slug", "{body}");
    assert_reveals_nothing(
        "a duplicate client slug",
        &body,
        &[w.agency1.id.to_string().as_str()],
    );
    assert_eq!(
        strata_tests::text(
            &su,
            &format!(
                "SELECT role FROM public.memberships WHERE user_id = '{member}' AND org_id = '{}'",
                w.agency1.id
            )
        )
        .await
        .as_deref(),
        Some("STRATEGIST")
    );
    assert_eq!(
        strata_tests::scalar(
            &su,
            "SELECT count(*) FROM tenant_b.workspace_entities WHERE slug = 'adidas'"
        )
        .await,
        1
    );
    assert_eq!(strata_tests::scalar(&su, audit).await, audit_before);

    // A row-level-security violation cannot be provoked through the API
    // (guards refuse first), so the mapping is checked where it happens: a
    // viewer's tenant transaction writing directly.
    let ctx =
        strata_persistence::context::resolve_for(&app.db, w.viewer, Some(w.agency1.id), "rls")
            .await
            .unwrap();
    let tx = strata_persistence::TenantTx::begin(&app.db, &ctx)
        .await
        .unwrap();
    let err = tx
        .execute_unprepared(&format!(
            "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name) VALUES ('{}', gen_random_uuid(), '{}', 'by a viewer')",
            w.agency1.id, w.nike
        ))
        .await
        .expect_err("the write policy refuses a viewer");
    assert!(
        err.to_string().contains("row-level security"),
        "an RLS violation: {err}"
    );
    let _ = tx.rollback().await;
    let domain = strata_persistence::map_db_err(err);
    assert!(
        matches!(domain, strata_domain::DomainError::Internal(_)),
        "{domain:?}"
    );
    let gql = strata_graphql::domain_error(domain);
    assert_eq!(gql.message, "internal error");
    let ext = serde_json::to_value(&gql.extensions).unwrap();
    assert_eq!(ext["code"], "INTERNAL", "{ext}");
    assert_reveals_nothing(
        "an RLS violation",
        &serde_json::json!({ "message": gql.message, "extensions": ext }),
        &[&w.agency1.id.to_string(), &w.nike.to_string()],
    );
    assert_eq!(
        strata_tests::scalar(
            &su,
            "SELECT count(*) FROM tenant_b.campaigns WHERE name = 'by a viewer'"
        )
        .await,
        0
    );
}

#[test]
fn the_checked_in_schema_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = strata_graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    assert!(
        checked_in == generated,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p strata-tests the_checked_in_schema` and commit it"
    );
}

/// The raw body of a query's answer, keys in the order they were sent.
async fn raw_answer(app: &TestApp, token: &str, query: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn campaigns_asked_only_for_scalars_answer_exactly_as_the_general_path_does() {
    let (app, w) = app_with_world().await;
    // Every scalar of Campaign, an alias, a repeated field and __typename.
    let fields = "__typename id name objective status clientId createdAt updatedAt again: id name";
    for token in [
        app.token(w.agency1.owner, Some(w.agency1.id)),
        app.token(w.sme1.owner, Some(w.sme1.id)),
    ] {
        // Plain fields take the shortcut; the same fields inside an inline
        // fragment take the executor's general path.
        let direct = format!("{{ campaigns(first: 10) {{ nodes {{ {fields} }} }} }}");
        let general =
            format!("{{ campaigns(first: 10) {{ nodes {{ ... on Campaign {{ {fields} }} }} }} }}");
        let a = raw_answer(&app, &token, &direct).await;
        let b = raw_answer(&app, &token, &general).await;
        assert!(a.contains("\"__typename\":\"Campaign\""), "{a}");
        assert!(!a.contains("errors"), "{a}");
        assert_eq!(a, b);

        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        let id = v["data"]["campaigns"]["nodes"][0]["id"].as_str().unwrap();
        let one = raw_answer(
            &app,
            &token,
            &format!("{{ campaign(id: \"{id}\") {{ {fields} }} }}"),
        )
        .await;
        let one_general = raw_answer(
            &app,
            &token,
            &format!("{{ campaign(id: \"{id}\") {{ ... on Campaign {{ {fields} }} }} }}"),
        )
        .await;
        assert!(one.contains(id), "{one}");
        assert_eq!(one, one_general);
    }
}

#[tokio::test]
async fn a_selection_with_more_than_scalars_still_resolves_every_field() {
    let (app, w) = app_with_world().await;
    let token = app.token(w.agency1.owner, Some(w.agency1.id));
    let q = "{ campaigns(first: 10) { nodes { id client { slug } skipped: name @skip(if: true) kept: name @include(if: true) } } }";
    let (status, body) = app.graphql(Some(&token), q, serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    let nodes = body["data"]["campaigns"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty(), "{body}");
    for n in nodes {
        assert!(n["client"]["slug"].is_string(), "{body}");
        assert!(n.get("skipped").is_none(), "{body}");
        assert!(n["kept"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn outputs_asked_only_for_scalars_answer_exactly_as_the_general_path_does() {
    let (app, w) = app_with_world().await;
    let su = app.test_db.superuser().await;
    // Content with nesting, escapes, numbers and unicode; one output
    // without content.
    use sea_orm::ConnectionTrait as _;
    su.execute_unprepared(
        r#"UPDATE tenant_b.outputs SET output = '{"version": 1, "text": "a \"quoted\" line\n", "n": [1, 2.5, -3e-7], "ok": true, "none": null, "é": {"deep": ["x"]}}'::jsonb;
           UPDATE public.agent_outputs SET output = NULL"#,
    )
    .await
    .unwrap();
    let fields = "__typename id runId agent content campaignId createdAt again: content";
    for token in [
        app.token(w.agency1.owner, Some(w.agency1.id)),
        app.token(w.sme1.owner, Some(w.sme1.id)),
    ] {
        let direct = format!(
            "{{ campaigns(first: 10) {{ nodes {{ id outputs(first: 10) {{ nodes {{ {fields} }} }} }} }} }}"
        );
        let general = format!(
            "{{ campaigns(first: 10) {{ nodes {{ id outputs(first: 10) {{ nodes {{ ... on AgentOutput {{ {fields} }} }} }} }} }} }}"
        );
        let a = raw_answer(&app, &token, &direct).await;
        let b = raw_answer(&app, &token, &general).await;
        assert!(a.contains("\"__typename\":\"AgentOutput\""), "{a}");
        assert!(!a.contains("errors"), "{a}");
        assert_eq!(a, b);
    }
    let agency = raw_answer(
        &app,
        &app.token(w.agency1.owner, Some(w.agency1.id)),
        &format!("{{ campaigns(first: 10) {{ nodes {{ outputs(first: 10) {{ nodes {{ {fields} }} }} }} }} }}"),
    )
    .await;
    assert!(agency.contains(r#""deep": ["x"]"#), "{agency}");
}

#[tokio::test]
async fn a_null_variable_for_an_argument_that_takes_none_is_bad_input_not_internal() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    // `goals: [String!]! = []` may be given a nullable variable (its
    // default makes that valid), and then a null reaches the executor.
    let (status, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID!, $g: [String!]) { runAgent(input: {campaignId: $c, agent: BUSINESS_STRATEGY, businessStrategy: {goals: $g}}) { id } }",
            serde_json::json!({ "c": w.sme1.campaigns[0].to_string(), "g": null }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}
