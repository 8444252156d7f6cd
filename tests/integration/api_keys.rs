//! API keys over real HTTP: who may create, list and revoke them, what a key
//! may see and do, and what the database keeps of its secret.

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_domain::OrgId;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};
use strata_tests::{scalar, text};

const CREATE: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) {
    secret key { id name prefix clientId client { id } readOnly expiresAt revokedAt lastUsedAt createdAt active } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt active } }";
const CAMPAIGN_IDS: &str = "{ campaigns(first: 100) { totalCount edges { node { id } } } }";

async fn app_with_world() -> (TestApp, World, DatabaseConnection) {
    let app = TestApp::spawn().await;
    let (world, su) = World::on(&app).await;
    (app, world, su)
}

/// Creates a key as `token`; returns the secret and the key's id.
async fn create_key(app: &TestApp, token: &str, input: Value) -> (String, String) {
    let (status, body) = app
        .graphql(Some(token), CREATE, json!({ "i": input }))
        .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["data"]["createApiKey"];
    let secret = created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    (
        secret.to_owned(),
        created["key"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Posts `query` with `Authorization: Bearer <secret>` and, if given,
/// `X-Strata-Org`.
async fn as_key(app: &TestApp, secret: &str, org: Option<OrgId>, query: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .bearer_auth(secret)
        .json(&json!({ "query": query, "variables": {} }));
    if let Some(org) = org {
        req = req.header("X-Strata-Org", org.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn ids(body: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = body["data"][field]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: impl IntoIterator<Item = impl ToString>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    v.sort();
    v
}

/// The body of a refused JWT, to compare a refused key's answer with.
async fn refused_jwt_body(app: &TestApp) -> Value {
    let (status, body) = app
        .graphql(Some("not-a-jwt"), "{ organization { id } }", json!({}))
        .await;
    assert_eq!(status, 401);
    body
}

async fn assert_refused(app: &TestApp, secret: &str, org: Option<OrgId>, what: &str) {
    let (status, body) = as_key(app, secret, org, "{ organization { id } }").await;
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}");
    assert!(body.get("data").is_none_or(Value::is_null), "{what}");
    assert_eq!(
        body["errors"][0]["message"],
        refused_jwt_body(app).await["errors"][0]["message"],
        "{what}: the same message as any refused credential"
    );
}

#[tokio::test]
async fn an_owners_key_reads_the_campaigns_of_its_own_organization_only() {
    let (app, w, _su) = app_with_world().await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let (status, body) = app
        .graphql(Some(&owner), CREATE, json!({ "i": { "name": "ci" } }))
        .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["data"]["createApiKey"];
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("strata_") && secret.len() >= 7 + 43,
        "{secret}"
    );
    assert_eq!(created["key"]["prefix"], secret[..12]);
    assert_eq!(created["key"]["active"], true);
    assert_eq!(created["key"]["readOnly"], false);
    assert!(created["key"]["clientId"].is_null());

    let (status, body) = as_key(&app, secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "campaigns"), sorted(&w.sme1.campaigns));

    let other = w.sme2.campaigns[0];
    let (_, body) = as_key(
        &app,
        secret,
        None,
        &format!(
            "{{ campaign(id: \"{other}\") {{ id }} organization {{ id }} me {{ user {{ id }} }} }}"
        ),
    )
    .await;
    assert!(body["data"]["campaign"].is_null(), "{body}");
    assert_eq!(body["data"]["organization"]["id"], w.sme1.id.to_string());
    assert!(body["data"]["me"]["user"].is_null());

    // Naming its own organization is fine; naming another is refused.
    let (status, _) = as_key(&app, secret, Some(w.sme1.id), "{ organization { id } }").await;
    assert_eq!(status, 200);
    assert_refused(&app, secret, Some(w.sme2.id), "another organization").await;
}

#[tokio::test]
async fn the_stored_key_hash_is_not_the_secret_and_does_not_contain_it() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (secret, id) = create_key(&app, &owner, json!({ "name": "hash" })).await;
    let hash = text(
        &su,
        &format!("SELECT key_hash FROM public.api_keys WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    let random_part = &secret["strata_".len()..];
    assert_ne!(hash, secret);
    assert!(!hash.contains(random_part) && !random_part.contains(&hash));
    assert_eq!(hash.len(), 64, "a SHA-256 in hex");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    // Nothing stored anywhere about the key holds the secret.
    let row = text(
        &su,
        &format!("SELECT row_to_json(k)::text FROM public.api_keys k WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    assert!(!row.contains(random_part), "{row}");
    let audit = text(
        &su,
        &format!("SELECT string_agg(row_to_json(a)::text, ' ') FROM public.audit_log a WHERE target_id = '{id}'"),
    )
    .await
    .unwrap();
    assert!(!audit.contains(random_part), "{audit}");
}

#[tokio::test]
async fn a_client_scoped_key_sees_only_its_clients_campaigns_and_not_the_other_client() {
    let (app, w, _su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (status, body) = app
        .graphql(
            Some(&owner),
            CREATE,
            json!({ "i": { "name": "nike only", "clientId": w.nike.to_string() } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["data"]["createApiKey"];
    assert_eq!(created["key"]["clientId"], w.nike.to_string());
    assert_eq!(created["key"]["client"]["id"], w.nike.to_string());
    let secret = created["secret"].as_str().unwrap();

    let (_, body) = as_key(&app, secret, None, CAMPAIGN_IDS).await;
    assert_eq!(ids(&body, "campaigns"), sorted(&w.nike_campaigns), "{body}");
    assert_eq!(body["data"]["campaigns"]["totalCount"], 2);

    let adidas_campaign = w.adidas_campaigns[0];
    let (_, body) = as_key(
        &app,
        secret,
        None,
        &format!(
            "{{ campaign(id: \"{adidas_campaign}\") {{ id }}
                adidas: client(id: \"{}\") {{ id }}
                nike: client(id: \"{}\") {{ id }}
                clients {{ edges {{ node {{ id }} }} }}
                byClient: campaigns(clientId: \"{}\") {{ totalCount }} }}",
            w.adidas, w.nike, w.adidas
        ),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["campaign"].is_null(), "{body}");
    assert!(body["data"]["adidas"].is_null(), "{body}");
    assert_eq!(body["data"]["nike"]["id"], w.nike.to_string());
    assert_eq!(ids(&body, "clients"), sorted([w.nike]));
    assert_eq!(body["data"]["byClient"]["totalCount"], 0);

    // Writing into the other client is "not found" too.
    let (_, body) = as_key(
        &app,
        secret,
        None,
        &format!(
            "mutation {{ createCampaign(input: {{ name: \"x\", clientId: \"{}\" }}) {{ id }} }}",
            w.adidas
        ),
    )
    .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
}

#[tokio::test]
async fn a_key_writes_content_and_its_audit_row_names_the_key() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let (secret, id) = create_key(&app, &owner, json!({ "name": "writer" })).await;
    let (_, body) = as_key(
        &app,
        &secret,
        None,
        "mutation { createCampaign(input: { name: \"from a key\" }) { id } }",
    )
    .await;
    let campaign = body["data"]["createCampaign"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.audit_log WHERE operation = 'createCampaign' \
                 AND target_id = '{campaign}' AND actor_api_key_id = '{id}' AND actor_user_id IS NULL"
            ),
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_read_only_key_cannot_create_a_campaign_and_nothing_is_written() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let (secret, _) = create_key(&app, &owner, json!({ "name": "reader", "readOnly": true })).await;
    let campaigns_before = scalar(&su, "SELECT count(*) FROM public.campaigns").await;
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;

    let (status, body) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body, "campaigns"), sorted(&w.sme1.campaigns));
    let (_, body) = as_key(
        &app,
        &secret,
        None,
        "mutation { createCampaign(input: { name: \"nope\" }) { id } }",
    )
    .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.campaigns").await,
        campaigns_before
    );
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_next_request() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (secret, id) = create_key(&app, &owner, json!({ "name": "short-lived" })).await;
    let (status, _) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200);

    let (_, body) = app.graphql(Some(&owner), REVOKE, json!({ "id": id })).await;
    assert_eq!(body["data"]["revokeApiKey"]["active"], false, "{body}");
    assert!(body["data"]["revokeApiKey"]["revokedAt"].is_string());
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.api_keys WHERE id = '{id}' AND revoked_at IS NOT NULL"
            ),
        )
        .await,
        1
    );
    assert_refused(&app, &secret, None, "revoked").await;
}

#[tokio::test]
async fn an_expired_key_is_refused_and_a_past_expiry_is_bad_input() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.sme2.owner, Some(w.sme2.id));
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (secret, id) = create_key(
        &app,
        &owner,
        json!({ "name": "expiring", "expiresAt": later.to_rfc3339() }),
    )
    .await;
    let (status, _) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200);
    su.execute_unprepared(&format!(
        "UPDATE public.api_keys SET expires_at = now() - interval '1 second' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    assert_refused(&app, &secret, None, "expired").await;

    let before = scalar(&su, "SELECT count(*) FROM public.api_keys").await;
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (_, body) = app
        .graphql(
            Some(&owner),
            CREATE,
            json!({ "i": { "name": "late", "expiresAt": past.to_rfc3339() } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "expiresAt");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.api_keys").await,
        before
    );
}

#[tokio::test]
async fn strategists_viewers_and_keys_cannot_create_list_or_revoke_keys() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (secret, id) = create_key(&app, &owner, json!({ "name": "mine" })).await;
    let keys_before = scalar(&su, "SELECT count(*) FROM public.api_keys").await;
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;

    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let am = app.token(w.account_manager, Some(w.agency1.id));
    for (who, token) in [
        ("strategist", &strategist),
        ("viewer", &viewer),
        ("account manager", &am),
    ] {
        let (_, body) = app
            .graphql(Some(token), CREATE, json!({ "i": { "name": "nope" } }))
            .await;
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "{who} creates: {body}"
        );
        let (_, body) = app
            .graphql(Some(token), "{ apiKeys { totalCount } }", json!({}))
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{who} lists: {body}");
        let (_, body) = app.graphql(Some(token), REVOKE, json!({ "id": id })).await;
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "{who} revokes: {body}"
        );
    }
    for query in [
        "mutation { createApiKey(input: { name: \"child\" }) { secret } }".to_owned(),
        "{ apiKeys { totalCount } }".to_owned(),
        format!("mutation {{ revokeApiKey(id: \"{id}\") {{ id }} }}"),
    ] {
        let (status, body) = as_key(&app, &secret, None, &query).await;
        assert_eq!(status, 200);
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "a key: {query}: {body}"
        );
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.api_keys").await,
        keys_before
    );
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before
    );
    let (status, _) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200, "the key still works");
}

#[tokio::test]
async fn another_tenants_key_id_in_revoke_is_not_found_and_the_key_keeps_working() {
    let (app, w, su) = app_with_world().await;
    let theirs = app.token(w.agency2.owner, Some(w.agency2.id));
    let (secret, id) = create_key(&app, &theirs, json!({ "name": "puma ci" })).await;
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;

    for (owner, org) in [(w.agency1.owner, w.agency1.id), (w.sme1.owner, w.sme1.id)] {
        let token = app.token(owner, Some(org));
        let (_, body) = app.graphql(Some(&token), REVOKE, json!({ "id": id })).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
        assert!(body["data"].is_null(), "{body}");
    }
    let unknown = uuid::Uuid::now_v7();
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (_, body) = app
        .graphql(Some(&owner), REVOKE, json!({ "id": unknown.to_string() }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");

    assert!(
        text(
            &su,
            &format!("SELECT revoked_at::text FROM public.api_keys WHERE id = '{id}'")
        )
        .await
        .is_none()
    );
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before
    );
    let (status, body) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "campaigns"), sorted(&w.agency2.campaigns));
}

#[tokio::test]
async fn api_keys_lists_only_the_organizations_keys_and_never_a_secret() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let (s1, k1) = create_key(&app, &owner, json!({ "name": "one" })).await;
    let (s2, k2) = create_key(&app, &owner, json!({ "name": "two", "readOnly": true })).await;
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let (s3, k3) = create_key(&app, &other, json!({ "name": "three" })).await;
    let seeded = scalar(
        &su,
        &format!(
            "SELECT count(*) FROM public.api_keys WHERE org_id = '{}'",
            w.sme1.id
        ),
    )
    .await;
    assert_eq!(seeded, 3, "the world's key and the two created here");

    let q = "query($after: String) { apiKeys(first: 2, after: $after) {
        totalCount pageInfo { hasNextPage } edges { cursor node { id name prefix readOnly active lastUsedAt } } } }";
    let (_, first) = app.graphql(Some(&owner), q, json!({})).await;
    let conn = &first["data"]["apiKeys"];
    assert_eq!(conn["totalCount"], 3, "{first}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    // Newest first.
    assert_eq!(conn["edges"][0]["node"]["id"], k2.as_str());
    assert_eq!(conn["edges"][0]["node"]["readOnly"], true);
    assert_eq!(conn["edges"][1]["node"]["id"], k1.as_str());
    let cursor = conn["edges"][1]["cursor"].as_str().unwrap();
    let (_, second) = app
        .graphql(Some(&owner), q, json!({ "after": cursor }))
        .await;
    let rest = second["data"]["apiKeys"]["edges"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert_ne!(rest[0]["node"]["id"], k3.as_str());
    assert_eq!(second["data"]["apiKeys"]["pageInfo"]["hasNextPage"], false);

    let everything = format!("{first}{second}");
    for secret in [&s1, &s2, &s3] {
        assert!(!everything.contains(&secret["strata_".len()..]));
    }
    assert!(!everything.contains(k3.as_str()));

    // Using a key records when, and the list shows it.
    let (status, _) = as_key(&app, &s1, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200);
    let used = text(
        &su,
        &format!("SELECT last_used_at::text FROM public.api_keys WHERE id = '{k1}'"),
    )
    .await;
    assert!(used.is_some());
    let (status, _) = as_key(&app, &s1, None, CAMPAIGN_IDS).await;
    assert_eq!(status, 200);
    assert_eq!(
        text(
            &su,
            &format!("SELECT last_used_at::text FROM public.api_keys WHERE id = '{k1}'"),
        )
        .await,
        used,
        "at most one write a minute"
    );
    let (_, body) = app
        .graphql(
            Some(&owner),
            "{ apiKeys { edges { node { id lastUsedAt } } } }",
            json!({}),
        )
        .await;
    let listed = body["data"]["apiKeys"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == k1.as_str())
        .cloned()
        .unwrap();
    assert!(listed["node"]["lastUsedAt"].is_string(), "{body}");
}

#[tokio::test]
async fn each_key_mutation_writes_one_audit_row_without_the_secret() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
    let (secret, id) = create_key(
        &app,
        &owner,
        json!({ "name": "audited", "clientId": w.nike.to_string() }),
    )
    .await;
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before + 1
    );
    let (_, body) = app.graphql(Some(&owner), REVOKE, json!({ "id": id })).await;
    assert_eq!(body["data"]["revokeApiKey"]["id"], id.as_str(), "{body}");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before + 2
    );
    for op in ["createApiKey", "revokeApiKey"] {
        assert_eq!(
            scalar(
                &su,
                &format!(
                    "SELECT count(*) FROM public.audit_log WHERE operation = '{op}' AND target_type = 'ApiKey' \
                     AND target_id = '{id}' AND org_id = '{}' AND client_id = '{}' AND actor_user_id = '{}'",
                    w.agency1.id, w.nike, w.agency1.owner
                ),
            )
            .await,
            1,
            "{op}"
        );
    }
    let details = text(
        &su,
        &format!(
            "SELECT string_agg(details::text, ' ') FROM public.audit_log WHERE target_id = '{id}'"
        ),
    )
    .await
    .unwrap();
    assert!(!details.contains(&secret["strata_".len()..]), "{details}");
}

#[tokio::test]
async fn client_rules_an_sme_cannot_name_a_client_and_another_tenants_client_is_not_found() {
    let (app, w, su) = app_with_world().await;
    let before = scalar(&su, "SELECT count(*) FROM public.api_keys").await;
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let (_, body) = app
        .graphql(
            Some(&sme),
            CREATE,
            json!({ "i": { "name": "x", "clientId": w.nike.to_string() } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "clientId");

    let agency = app.token(w.agency1.owner, Some(w.agency1.id));
    for client in [w.puma.to_string(), uuid::Uuid::now_v7().to_string()] {
        let (_, body) = app
            .graphql(
                Some(&agency),
                CREATE,
                json!({ "i": { "name": "x", "clientId": client } }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    let (_, body) = app
        .graphql(Some(&agency), CREATE, json!({ "i": { "name": "  " } }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "name");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.api_keys").await,
        before
    );
}

#[tokio::test]
async fn a_garbage_or_unknown_strata_token_is_401() {
    let (app, w, _su) = app_with_world().await;
    assert_refused(&app, "strata_xxx", None, "garbage").await;
    let unknown = format!("strata_{}", "A".repeat(43));
    assert_refused(&app, &unknown, None, "well-formed but unknown").await;
    assert_refused(
        &app,
        &unknown,
        Some(w.sme1.id),
        "unknown, with an organization",
    )
    .await;
}

#[tokio::test]
async fn a_rotated_key_gets_a_new_secret_and_the_old_one_works_until_its_grace_ends() {
    let app = TestApp::spawn().await;
    let (w, su) = strata_tests::world::World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let created = ok(
        &app,
        &owner,
        "mutation { createApiKey(input: {name: \"feed\"}) { key { id prefix } secret } }",
        json!({}),
    )
    .await;
    let id = created["createApiKey"]["key"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let reads = |secret: &str| {
        let app = &app;
        let secret = secret.to_owned();
        async move {
            app.graphql(Some(&secret), "{ campaigns { totalCount } }", json!({}))
                .await
                .0
        }
    };
    assert_eq!(reads(&first).await, 200);
    let rotate = "mutation($id: ID!, $g: Int!) { rotateApiKey(id: $id, graceSeconds: $g) { key { id prefix } secret } }";
    let data = ok(&app, &owner, rotate, json!({ "id": id, "g": 3600 })).await;
    let second = data["rotateApiKey"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(data["rotateApiKey"]["key"]["id"], id.as_str());
    assert_ne!(second, first);
    assert!(second.starts_with(data["rotateApiKey"]["key"]["prefix"].as_str().unwrap()));
    // Both work during the grace; the stored row holds no secret.
    assert_eq!(reads(&first).await, 200);
    assert_eq!(reads(&second).await, 200);
    assert_eq!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM public.api_keys WHERE key_hash = '{second}' OR previous_key_hash = '{first}'")
        )
        .await,
        0
    );
    // The grace ends: only the new secret works.
    su.execute_unprepared(&format!(
        "UPDATE public.api_keys SET previous_valid_until = now() - interval '1 second' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    assert_eq!(reads(&first).await, 401);
    assert_eq!(reads(&second).await, 200);
    // Rotating without grace stops the current secret at once; the one
    // before it is gone for good.
    let data = ok(&app, &owner, rotate, json!({ "id": id, "g": 0 })).await;
    let third = data["rotateApiKey"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(reads(&second).await, 401);
    assert_eq!(reads(&first).await, 401);
    assert_eq!(reads(&third).await, 200);
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM public.audit_log WHERE operation = 'rotateApiKey'"
        )
        .await,
        2
    );
    // Bad grace, a revoked key, a stranger, a non-administrator.
    let (_, body) = app
        .graphql(Some(&owner), rotate, json!({ "id": id, "g": -1 }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "graceSeconds");
    let stranger = app.token(w.agency2.owner, Some(w.agency2.id));
    let (_, body) = app
        .graphql(Some(&stranger), rotate, json!({ "id": id, "g": 60 }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let (_, body) = app
        .graphql(Some(&strategist), rotate, json!({ "id": id, "g": 60 }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    ok(
        &app,
        &owner,
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let (_, body) = app
        .graphql(Some(&owner), rotate, json!({ "id": id, "g": 60 }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(reads(&third).await, 401);
}

#[tokio::test]
async fn a_keys_role_is_viewer_or_strategist_and_a_viewer_key_only_reads() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let create = "mutation($r: ApiKeyRole, $ro: Boolean) { createApiKey(input: {name: \"k\", role: $r, readOnly: $ro}) { key { role readOnly } secret } }";
    let write = "mutation { createCampaign(input: {name: \"from a key\"}) { id } }";
    for (role, read_only, expected, writes) in [
        (json!("VIEWER"), json!(null), "VIEWER", false),
        (json!("STRATEGIST"), json!(null), "STRATEGIST", true),
        (json!(null), json!(true), "VIEWER", false),
        (json!(null), json!(null), "STRATEGIST", true),
        (json!("VIEWER"), json!(true), "VIEWER", false),
    ] {
        let data = ok(&app, &owner, create, json!({ "r": role, "ro": read_only })).await;
        let key = &data["createApiKey"];
        assert_eq!(key["key"]["role"], expected, "{role} {read_only}");
        assert_eq!(key["key"]["readOnly"], !writes);
        let secret = key["secret"].as_str().unwrap();
        let (_, body) = app.graphql(Some(secret), write, json!({})).await;
        if writes {
            assert!(body.get("errors").is_none(), "{body}");
        } else {
            assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        }
    }
    let keys = scalar(&su, "SELECT count(*) FROM public.api_keys").await;
    let (_, body) = app
        .graphql(
            Some(&owner),
            create,
            json!({ "r": "STRATEGIST", "ro": true }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "role");
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.api_keys").await,
        keys
    );
}

#[tokio::test]
async fn a_key_limited_to_several_clients_sees_exactly_those_and_erasing_one_narrows_it() {
    let (app, w, su) = app_with_world().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let before = scalar(&su, "SELECT count(*) FROM public.api_keys").await;
    // Another agency's client among them: not found, nothing written.
    for clients in [
        json!([w.nike.to_string(), w.puma.to_string()]),
        json!([w.nike.to_string(), uuid::Uuid::now_v7().to_string()]),
    ] {
        let (_, body) = app
            .graphql(
                Some(&owner),
                CREATE,
                json!({ "i": { "name": "two", "clientIds": clients } }),
            )
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    // An SME names no client; a rate must be positive.
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let (_, body) = app
        .graphql(
            Some(&sme),
            CREATE,
            json!({ "i": { "name": "x", "clientIds": [w.nike.to_string()] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "clientIds",
        "{body}"
    );
    for rate in [0, -5, 2_000_000] {
        let (_, body) = app
            .graphql(
                Some(&owner),
                CREATE,
                json!({ "i": { "name": "x", "rateLimitPerMinute": rate } }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "rateLimitPerMinute",
            "{body}"
        );
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.api_keys").await,
        before
    );

    let (status, body) = app
        .graphql(
            Some(&owner),
            "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret key { id clientId clientIds clients { id } rateLimitPerMinute } } }",
            json!({ "i": { "name": "both", "clientIds": [w.adidas.to_string(), w.nike.to_string(), w.adidas.to_string()], "rateLimitPerMinute": 600 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key = &body["data"]["createApiKey"]["key"];
    assert_eq!(
        key["clientIds"],
        json!([w.adidas.to_string(), w.nike.to_string()])
    );
    assert_eq!(key["clientId"], w.adidas.to_string());
    assert_eq!(key["clients"].as_array().map(Vec::len), Some(2));
    assert_eq!(key["rateLimitPerMinute"], 600);
    let id = key["id"].as_str().unwrap().to_owned();
    let secret = body["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut both: Vec<_> = w.nike_campaigns.iter().chain(&w.adidas_campaigns).collect();
    both.sort();
    let (_, body) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(ids(&body, "campaigns"), sorted(both), "{body}");
    let (_, body) = as_key(&app, &secret, None, "{ clients { edges { node { id } } } }").await;
    assert_eq!(ids(&body, "clients"), sorted([w.nike, w.adidas]));
    // The database holds both, in the key's row.
    assert_eq!(
        text(
            &su,
            &format!(
                "SELECT array_to_string(client_ids, ',') FROM public.api_keys WHERE id = '{id}'"
            )
        )
        .await,
        Some(format!("{},{}", w.adidas, w.nike))
    );
    // Erasing adidas leaves the key limited to nike: not deleted, and not
    // widened to every client.
    ok(
        &app,
        &owner,
        "mutation($id: ID!) { deleteClient(id: $id) }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(
        text(&su, &format!("SELECT client_id::text || '|' || array_to_string(client_ids, ',') FROM public.api_keys WHERE id = '{id}'")).await,
        Some(format!("{}|{}", w.nike, w.nike))
    );
    let (_, body) = as_key(&app, &secret, None, CAMPAIGN_IDS).await;
    assert_eq!(ids(&body, "campaigns"), sorted(&w.nike_campaigns), "{body}");
}

#[tokio::test]
async fn a_key_with_a_rate_of_its_own_is_limited_by_it_and_others_are_not() {
    let app = TestApp::builder()
        .rate_limits(strata_server::ratelimit::RateLimitConfig {
            per_key: strata_server::ratelimit::Rate::per_second(100),
            per_org: strata_server::ratelimit::Rate::per_second(100),
            burst: 1,
            ..strata_server::ratelimit::RateLimitConfig::off()
        })
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let (slow, _) = create_key(
        &app,
        &owner,
        json!({ "name": "slow", "rateLimitPerMinute": 3 }),
    )
    .await;
    let (fast, _) = create_key(&app, &owner, json!({ "name": "fast" })).await;
    let query = "{ me { role } }";
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(as_key(&app, &slow, None, query).await.0);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let (_, body) = as_key(&app, &slow, None, query).await;
    assert!(
        body.to_string().contains("api key"),
        "the key's own bucket refused it: {body}"
    );
    for _ in 0..5 {
        assert_eq!(as_key(&app, &fast, None, query).await.0, 200);
    }
}
