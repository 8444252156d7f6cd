//! Authentication over real HTTP: every refused credential looks the same to
//! the client; RS256 and ES256 keys come from a JWKS endpoint the test runs,
//! rotate, never verify another algorithm, and a flood of unknown key ids
//! cannot hammer that endpoint; resolved users are cached only briefly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use strata_domain::{OrgId, UserId};
use strata_tests::world::World;
use strata_tests::{SECRET, TestApp, error_code};

const RSA_1: &str = include_str!("../fixtures/jwt/rsa-1.pem");
const RSA_2: &str = include_str!("../fixtures/jwt/rsa-2.pem");
const EC_1: &str = include_str!("../fixtures/jwt/ec-1.pem");

const ISSUER: &str = "https://id.strata.test";
const AUDIENCE: &str = "strata-gateway";
const ME: &str = "{ me { user { id } organization { id } } }";

/// The base64url of `{"alg":"none","typ":"JWT"}`.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `user` in `org`, for ten minutes.
fn claims(user: UserId, org: Option<OrgId>) -> Value {
    let mut c = json!({ "sub": user.to_string(), "exp": now() + 600 });
    if let Some(org) = org {
        c["org_id"] = json!(org.to_string());
    }
    c
}

fn hs256(secret: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A signing key of the tests' own identity provider.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn rsa(pem: &str, kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        }
    }

    fn ec(pem: &str, kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        }
    }

    /// The public half, as the JWKS endpoint publishes it.
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_naming(&self.kid, claims)
    }

    /// Signs with this key, the header naming `kid`.
    fn sign_naming(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

struct JwksState {
    /// What the endpoint serves; `None` answers 503.
    keys: Mutex<Option<JwkSet>>,
    requests: AtomicUsize,
}

/// A JWKS endpoint on a real socket that counts its requests and can switch
/// keys or fail.
struct JwksServer {
    url: String,
    state: Arc<JwksState>,
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let keys = state.keys.lock().unwrap().clone();
    match keys {
        Some(set) => axum::Json(set).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

impl JwksServer {
    async fn start(keys: &[&Signer]) -> Self {
        let state = Arc::new(JwksState {
            keys: Mutex::new(None),
            requests: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        let server = Self { url, state };
        server.publish(keys);
        server
    }

    /// Serves exactly these keys from now on.
    fn publish(&self, keys: &[&Signer]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
        *self.state.keys.lock().unwrap() = Some(set);
    }

    /// Answers 503 from now on.
    fn fail(&self) {
        *self.state.keys.lock().unwrap() = None;
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// Posts `query` with exactly these headers.
async fn post(app: &TestApp, headers: &[(&str, &str)], query: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": query }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    app.graphql(Some(token), ME, json!({})).await
}

fn assert_refused(what: &str, status: u16, body: &Value) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(error_code(body), Some("UNAUTHENTICATED"), "{what}: {body}");
    assert!(
        body.get("data").is_none_or(Value::is_null),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn every_refused_credential_is_the_same_401_unauthenticated_without_data() {
    let app = TestApp::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .spawn()
        .await;
    let (w, _su) = World::on(&app).await;
    let mut good = claims(w.sme1.owner, Some(w.sme1.id));
    good["iss"] = json!(ISSUER);
    good["aud"] = json!(AUDIENCE);
    let with = |claim: &str, value: Value| {
        let mut c = good.clone();
        c[claim] = value;
        hs256(SECRET, None, &c)
    };
    let without = |claim: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(claim);
        hs256(SECRET, None, &c)
    };
    let valid = hs256(SECRET, None, &good);
    let (status, body) = me(&app, &valid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["me"]["organization"]["id"],
        w.sme1.id.to_string()
    );
    let (status, body) = me(&app, &with("aud", json!(["another-api", AUDIENCE]))).await;
    assert_eq!(status, 200, "an audience list naming this one: {body}");

    let mut parts = valid.split('.');
    let (_, payload, signature) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let bearer = |token: String| format!("Bearer {token}");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no header", vec![]),
        (
            "not bearer",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
        ),
        (
            "bearer without a token",
            vec![("authorization", "Bearer".into())],
        ),
        (
            "not a jwt",
            vec![("authorization", bearer("not-a-jwt".into()))],
        ),
        (
            "bad signature",
            vec![(
                "authorization",
                bearer(hs256("another-secret-another-secret-another", None, &good)),
            )],
        ),
        (
            "alg none, no signature",
            vec![(
                "authorization",
                bearer(format!("{ALG_NONE_HEADER}.{payload}.")),
            )],
        ),
        (
            "alg none, the signature kept",
            vec![(
                "authorization",
                bearer(format!("{ALG_NONE_HEADER}.{payload}.{signature}")),
            )],
        ),
        (
            "expired",
            vec![("authorization", bearer(with("exp", json!(now() - 3600))))],
        ),
        ("no exp", vec![("authorization", bearer(without("exp")))]),
        (
            "not yet valid",
            vec![("authorization", bearer(with("nbf", json!(now() + 3600))))],
        ),
        (
            "wrong issuer",
            vec![(
                "authorization",
                bearer(with("iss", json!("https://id.elsewhere.test"))),
            )],
        ),
        ("no issuer", vec![("authorization", bearer(without("iss")))]),
        (
            "wrong audience",
            vec![("authorization", bearer(with("aud", json!("another-api"))))],
        ),
        (
            "no audience",
            vec![("authorization", bearer(without("aud")))],
        ),
        (
            "sub not a uuid",
            vec![("authorization", bearer(with("sub", json!("alice"))))],
        ),
        (
            "unknown organization",
            vec![(
                "authorization",
                bearer(with("org_id", json!(OrgId::generate().to_string()))),
            )],
        ),
        (
            "organization of another tenant",
            vec![(
                "authorization",
                bearer(with("org_id", json!(w.sme2.id.to_string()))),
            )],
        ),
        (
            "X-Strata-Org of another tenant",
            vec![
                ("authorization", bearer(valid.clone())),
                ("x-strata-org", w.agency1.id.to_string()),
            ],
        ),
    ];
    let mut messages = Vec::new();
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, body) = post(&app, &headers, ME).await;
        assert_refused(what, status, &body);
        messages.push(body["errors"][0]["message"].clone());
    }
    assert!(
        messages.windows(2).all(|m| m[0] == m[1]),
        "one message whatever the reason: {messages:?}"
    );
}

#[tokio::test]
async fn a_removed_member_is_refused_once_the_auth_cache_ttl_has_passed() {
    let ttl = Duration::from_secs(1);
    let app = TestApp::builder().auth_cache_ttl(ttl).spawn().await;
    let (w, su) = World::on(&app).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let (status, body) = me(&app, &token).await;
    assert_eq!(status, 200, "{body}");

    su.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM public.memberships WHERE org_id = $1 AND user_id = $2",
        [w.sme1.id.as_uuid().into(), w.sme1.owner.as_uuid().into()],
    ))
    .await
    .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    let (status, body) = me(&app, &token).await;
    assert_refused("removed member", status, &body);
}

#[tokio::test]
async fn x_strata_org_picks_among_several_memberships_and_wins_over_the_org_id_claim() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    // SME-1's admin is also a strategist of AGENCY-2.
    let user = w.sme1_admin;
    su.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES ($1, $2, 'AGENCY', 'STRATEGIST')",
        [w.agency2.id.as_uuid().into(), user.as_uuid().into()],
    ))
    .await
    .unwrap();
    let query = "{ me { role organization { id } memberships { organizationId } } organization { id type } campaigns(first: 100) { edges { node { id } } } }";
    let campaigns = |org: &strata_tests::world::Org| {
        let mut ids: Vec<String> = org.campaigns.iter().map(ToString::to_string).collect();
        ids.sort();
        ids
    };
    let with_org = app.token(user, Some(w.sme1.id));
    let without_org = app.token(user, None);
    let sme1 = w.sme1.id.to_string();
    let agency2 = w.agency2.id.to_string();
    for (what, token, header, org, role, org_type) in [
        ("claim only", &with_org, None, &w.sme1, "ADMIN", "SME"),
        (
            "header only",
            &without_org,
            Some(&agency2),
            &w.agency2,
            "STRATEGIST",
            "AGENCY",
        ),
        (
            "header only, the other org",
            &without_org,
            Some(&sme1),
            &w.sme1,
            "ADMIN",
            "SME",
        ),
        (
            "header and claim agree",
            &with_org,
            Some(&sme1),
            &w.sme1,
            "ADMIN",
            "SME",
        ),
        (
            "header overrides the claim",
            &with_org,
            Some(&agency2),
            &w.agency2,
            "STRATEGIST",
            "AGENCY",
        ),
    ] {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(h) = header {
            headers.push(("x-strata-org", h.as_str()));
        }
        let (status, body) = post(&app, &headers, query).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert!(body.get("errors").is_none(), "{what}: {body}");
        let data = &body["data"];
        assert_eq!(data["organization"]["id"], org.id.to_string(), "{what}");
        assert_eq!(data["organization"]["type"], org_type, "{what}");
        assert_eq!(
            data["me"]["organization"]["id"],
            org.id.to_string(),
            "{what}"
        );
        assert_eq!(data["me"]["role"], role, "{what}");
        assert_eq!(
            data["me"]["memberships"].as_array().unwrap().len(),
            2,
            "{what}"
        );
        // The rows too come from the selected organization only.
        let mut seen: Vec<String> = data["campaigns"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        seen.sort();
        assert_eq!(seen, campaigns(org), "{what}");
    }

    // Neither claim nor header: `me` answers, with no active organization,
    // and anything of an organization is refused, naming both ways to pick.
    let (status, body) = post(
        &app,
        &[("authorization", &format!("Bearer {without_org}"))],
        "{ me { role organization { id } memberships { organizationId } } }",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["me"]["organization"].is_null(), "{body}");
    assert!(body["data"]["me"]["role"].is_null(), "{body}");
    assert_eq!(
        body["data"]["me"]["memberships"].as_array().unwrap().len(),
        2
    );
    for q in ["{ organization { id } }", "{ campaigns { totalCount } }"] {
        let (status, body) = post(
            &app,
            &[("authorization", &format!("Bearer {without_org}"))],
            q,
        )
        .await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{q}: {body}");
        assert!(body["data"].is_null(), "{q}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("X-Strata-Org") && message.contains("org_id"),
            "{q}: {message}"
        );
    }

    // A header naming an organization the user is not in is refused, even
    // with a valid claim beside it.
    let (status, body) = post(
        &app,
        &[
            ("authorization", &format!("Bearer {with_org}")),
            ("x-strata-org", &w.agency1.id.to_string()),
        ],
        ME,
    )
    .await;
    assert_refused("a header naming another organization", status, &body);
}

#[tokio::test]
async fn a_cached_user_acts_under_each_requests_own_id() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let token = format!("Bearer {}", app.token(w.sme1.owner, Some(w.sme1.id)));
    let ids = ["auth-cache-first", "auth-cache-second"];
    for id in ids {
        let (status, body) = post(
            &app,
            &[("authorization", &token), ("x-request-id", id)],
            "mutation { createCampaign(input: { name: \"Cached\" }) { id } }",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let seen = audited_request_ids(&su, w.sme1.id, &ids).await;
    assert_eq!(seen, ids, "each audit row carries its own request's id");
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_keys_from_the_jwks_endpoint() {
    let rsa = Signer::rsa(RSA_1, "rsa-1");
    let ec = Signer::ec(EC_1, "ec-1");
    let jwks = JwksServer::start(&[&rsa, &ec]).await;
    let app = TestApp::builder()
        .without_secret()
        .jwks_url(&jwks.url)
        .spawn()
        .await;
    let user = UserId::generate();
    let c = claims(user, None);
    for (what, token) in [("RS256", rsa.sign(&c)), ("ES256", ec.sign(&c))] {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["data"]["me"]["user"]["id"], user.to_string(), "{what}");
    }

    let other_rsa = Signer::rsa(RSA_2, "rsa-2");
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 3600);
    for (what, token) in [
        (
            "another key naming rsa-1",
            other_rsa.sign_naming("rsa-1", &c),
        ),
        ("ES256 naming the RSA key", ec.sign_naming("rsa-1", &c)),
        ("RS256 naming the EC key", rsa.sign_naming("ec-1", &c)),
        ("HS256 without a configured secret", hs256(SECRET, None, &c)),
        ("expired RS256", rsa.sign(&expired)),
    ] {
        let (status, body) = me(&app, &token).await;
        assert_refused(what, status, &body);
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_its_new_kid() {
    let old = Signer::rsa(RSA_1, "2026-01");
    let new = Signer::rsa(RSA_2, "2026-02");
    let jwks = JwksServer::start(&[&old]).await;
    let app = TestApp::builder()
        .without_secret()
        .jwks_url(&jwks.url)
        .spawn()
        .await;
    let c = claims(UserId::generate(), None);
    let (status, body) = me(&app, &old.sign(&c)).await;
    assert_eq!(status, 200, "{body}");

    jwks.publish(&[&new]);
    let (status, body) = me(&app, &new.sign(&c)).await;
    assert_eq!(status, 200, "the new key after rotation: {body}");
    let (status, body) = me(&app, &old.sign(&c)).await;
    assert_refused("the key rotated out", status, &body);
}

#[tokio::test]
async fn an_hs256_token_naming_an_rsa_key_is_refused() {
    let rsa = Signer::rsa(RSA_1, "rsa-1");
    let jwks = JwksServer::start(&[&rsa]).await;
    let app = TestApp::builder().jwks_url(&jwks.url).spawn().await;
    let c = claims(UserId::generate(), None);
    for (what, token) in [
        ("HS256 with the secret", hs256(SECRET, None, &c)),
        ("RS256 with the key", rsa.sign(&c)),
    ] {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
    }

    let public_key = serde_json::to_string(&rsa.jwk()).unwrap();
    for (what, token) in [
        (
            "HMAC keyed with the public RSA key",
            hs256(&public_key, Some("rsa-1"), &c),
        ),
        (
            "HMAC keyed with the secret, naming the RSA key",
            hs256(SECRET, Some("rsa-1"), &c),
        ),
    ] {
        let (status, body) = me(&app, &token).await;
        assert_refused(what, status, &body);
    }
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_fetches_the_jwks_endpoint_at_most_once() {
    let rsa = Signer::rsa(RSA_1, "rsa-1");
    let jwks = JwksServer::start(&[&rsa]).await;
    let app = Arc::new(
        TestApp::builder()
            .without_secret()
            .jwks_url(&jwks.url)
            .spawn()
            .await,
    );
    let c = claims(UserId::generate(), None);
    let before = jwks.requests();

    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let token = rsa.sign_naming(&uuid::Uuid::new_v4().to_string(), &c);
        let app = Arc::clone(&app);
        flood.spawn(async move { me(&app, &token).await });
    }
    while let Some(answer) = flood.join_next().await {
        let (status, body) = answer.unwrap();
        assert_refused("unknown kid", status, &body);
    }
    let refreshes = jwks.requests() - before;
    assert!(refreshes <= 1, "{refreshes} fetches for one refresh window");

    let (status, body) = me(&app, &rsa.sign(&c)).await;
    assert_eq!(status, 200, "a known key needs no fetch: {body}");
    assert_eq!(jwks.requests() - before, refreshes);
}

#[tokio::test]
async fn an_unavailable_jwks_endpoint_does_not_stop_the_gateway_and_is_asked_again_on_demand() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    TestApp::builder()
        .without_secret()
        .jwks_url(closed)
        .try_spawn()
        .await
        .expect("an unreachable JWKS endpoint is no reason not to start");

    let rsa = Signer::rsa(RSA_1, "rsa-1");
    let jwks = JwksServer::start(&[]).await;
    jwks.fail();
    let app = TestApp::builder()
        .without_secret()
        .jwks_url(&jwks.url)
        .spawn()
        .await;
    jwks.publish(&[&rsa]);
    let (status, body) = me(&app, &rsa.sign(&claims(UserId::generate(), None))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unparseable_jwks_url_is_a_start_up_error_naming_the_variable() {
    for url in ["not a url", "ftp://keys.example.test/jwks.json", "http://"] {
        let err = TestApp::builder()
            .without_secret()
            .jwks_url(url)
            .try_spawn()
            .await
            .err()
            .unwrap_or_else(|| panic!("{url:?} was accepted"));
        let text = format!("{err:#}");
        assert!(text.contains("STRATA_JWKS_URL"), "{url:?}: {text}");
    }
}

#[tokio::test]
async fn request_ids_with_quotes_and_backslashes_reach_the_audit_log_as_sent() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let token = format!("Bearer {}", app.token(w.sme1.owner, Some(w.sme1.id)));
    // The context travels as literals in the transaction's first message:
    // whatever a request id holds must arrive as data, never as SQL.
    let ids = [
        r"it's\a-test",
        r"x';SET-LOCAL-ROLE-strata_owner;--",
        r"E'\\'\';",
    ];
    for id in ids {
        let (status, body) = post(
            &app,
            &[("authorization", &token), ("x-request-id", id)],
            "mutation { createCampaign(input: { name: \"Quoted\" }) { id } }",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let seen = audited_request_ids(&su, w.sme1.id, &ids).await;
    assert_eq!(seen, ids);
    assert_eq!(
        strata_tests::scalar(
            &su,
            "SELECT count(*) FROM public.campaigns WHERE name = 'Quoted'"
        )
        .await,
        3
    );
}

/// The request ids of `org`'s `createCampaign` audit rows among `ids`, oldest
/// first.
async fn audited_request_ids(
    su: &sea_orm::DatabaseConnection,
    org: strata_domain::OrgId,
    ids: &[&str],
) -> Vec<String> {
    let rows = su
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT request_id FROM public.audit_log
             WHERE org_id = $1 AND operation = 'createCampaign' AND request_id = ANY($2)
             ORDER BY created_at",
            [
                org.as_uuid().into(),
                ids.iter()
                    .map(|s| (*s).to_owned())
                    .collect::<Vec<_>>()
                    .into(),
            ],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect()
}

/// Tokens shaped like those of the common identity providers, signed with
/// RS256 or ES256 by keys from the test's JWKS endpoint: any `sub` maps to
/// a user (a UUID `sub` is the user id itself; another is derived from the
/// issuer and subject, the same each time and different per issuer), the
/// organization comes from the configured (here namespaced) claim, and the
/// e-mail from the token.
#[tokio::test]
async fn tokens_of_common_identity_providers_sign_in_with_configured_claim_names() {
    use strata_server::auth::user_id_for_subject;
    let rsa = Signer::rsa(RSA_1, "rsa-1");
    let ec = Signer::ec(EC_1, "ec-1");
    let jwks = JwksServer::start(&[&rsa, &ec]).await;
    const ORG_CLAIM: &str = "https://strata.example/org_id";
    let app = TestApp::builder()
        .without_secret()
        .jwks_url(&jwks.url)
        .claims(strata_server::config::ClaimNames {
            org: ORG_CLAIM.into(),
            email: "email".into(),
            name: "name".into(),
            ..Default::default()
        })
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    let org = w.sme1.id;
    let exp = now() + 600;
    let keycloak_id = UserId::generate();
    let supabase_id = UserId::generate();
    let cases: Vec<(&str, &Signer, Value)> = vec![
        (
            "Auth0",
            &rsa,
            json!({
                "iss": "https://strata-test.eu.auth0.com/", "sub": "auth0|64f0a1b2c3d4e5f6a7b8c9d0",
                "aud": ["strata-gateway", "https://strata-test.eu.auth0.com/userinfo"],
                "exp": exp, "iat": now(), "azp": "abc", "scope": "openid profile email",
                ORG_CLAIM: org.to_string(), "email": "ana@example.com", "email_verified": true, "name": "Ana",
            }),
        ),
        (
            "Okta",
            &rsa,
            json!({
                "ver": 1, "iss": "https://dev-1234.okta.com/oauth2/default", "sub": "00u1a2b3c4D5E6F7G8h9",
                "aud": "api://default", "exp": exp, "iat": now(), "cid": "0oa1", "uid": "00u1a2b3c4D5E6F7G8h9",
                "scp": ["openid", "email"], ORG_CLAIM: org.to_string(), "email": "bo@example.com",
            }),
        ),
        (
            "Keycloak",
            &ec,
            json!({
                "iss": "https://sso.example.com/realms/agency", "sub": keycloak_id.to_string(),
                "aud": "account", "typ": "Bearer", "azp": "strata", "exp": exp, "iat": now(),
                "realm_access": { "roles": ["offline_access"] }, "preferred_username": "cy",
                ORG_CLAIM: org.to_string(), "email": "cy@example.com", "email_verified": false, "name": "Cy",
            }),
        ),
        (
            "Google",
            &rsa,
            json!({
                "iss": "https://accounts.google.com", "sub": "110169484474386276334", "azp": "1.apps",
                "aud": "1.apps", "exp": exp, "iat": now(), "hd": "example.com",
                ORG_CLAIM: org.to_string(), "email": "di@example.com", "email_verified": "true", "name": "Di",
            }),
        ),
        (
            "Supabase",
            &ec,
            json!({
                "iss": "https://abcd.supabase.co/auth/v1", "sub": supabase_id.to_string(), "aud": "authenticated",
                "exp": exp, "iat": now(), "role": "authenticated", "aal": "aal1", "session_id": "s",
                "app_metadata": { "provider": "email" }, "is_anonymous": false,
                ORG_CLAIM: org.to_string(), "email": "ed@example.com",
            }),
        ),
    ];
    for (provider, signer, claims) in &cases {
        let iss = claims["iss"].as_str();
        let sub = claims["sub"].as_str().unwrap();
        let user = user_id_for_subject(iss, sub);
        // The organization's owner adds the user as a member, as an
        // invitation would.
        su.execute_unprepared(&format!(
            "INSERT INTO public.users (id) VALUES ('{user}') ON CONFLICT DO NOTHING;
             INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES ('{org}', '{user}', 'SME', 'VIEWER')"
        ))
        .await
        .unwrap();
        let token = signer.sign(claims);
        let (status, body) = app
            .graphql(
                Some(&token),
                "{ me { user { id email } organization { id } role } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{provider}: {body}");
        let me = &body["data"]["me"];
        assert_eq!(me["user"]["id"], user.to_string(), "{provider}: {body}");
        assert_eq!(me["user"]["email"], claims["email"], "{provider}: {body}");
        assert_eq!(
            me["organization"]["id"],
            org.to_string(),
            "{provider}: {body}"
        );
        assert_eq!(me["role"], "VIEWER", "{provider}: {body}");
        // The same token again is the same user.
        let (_, again) = me_of(&app, &token).await;
        assert_eq!(again, user.to_string(), "{provider}");
    }
    // A UUID subject keeps its user; any other is derived, per issuer.
    assert_eq!(
        user_id_for_subject(
            Some("https://sso.example.com/realms/agency"),
            &keycloak_id.to_string()
        ),
        keycloak_id
    );
    assert_ne!(
        user_id_for_subject(Some("https://a.example/"), "user-1"),
        user_id_for_subject(Some("https://b.example/"), "user-1"),
    );
    // Without the configured claim the token names no organization: the
    // plain `org_id` claim is not read when another name is configured.
    let google = &cases[3].2;
    let mut plain = google.clone();
    plain.as_object_mut().unwrap().remove(ORG_CLAIM);
    plain["org_id"] = json!(w.sme2.id.to_string());
    let (status, body) = app
        .graphql(
            Some(&rsa.sign(&plain)),
            "{ me { organization { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["me"]["organization"]["id"],
        org.to_string(),
        "{body}"
    );

    // Subjects Strata refuses: empty, longer than 255 characters, holding
    // control characters, not a string; an organization claim that is
    // not a UUID.
    for (what, patch) in [
        ("empty sub", json!({ "sub": "" })),
        ("long sub", json!({ "sub": "x".repeat(256) })),
        ("control character", json!({ "sub": "auth0|a\nb" })),
        ("numeric sub", json!({ "sub": 12345 })),
        ("org claim not a uuid", json!({ ORG_CLAIM: "acme" })),
    ] {
        let mut c = google.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let (status, body) = me(&app, &rsa.sign(&c)).await;
        assert_refused(what, status, &body);
    }
    // A new subject of the longest length signs in (and is provisioned,
    // with no organization yet).
    let mut longest = google.clone();
    longest["sub"] = json!("y".repeat(255));
    longest.as_object_mut().unwrap().remove(ORG_CLAIM);
    let (status, id) = me_of(&app, &rsa.sign(&longest)).await;
    assert_eq!(status, 200, "a 255-character sub signs in");
    assert_eq!(
        id,
        user_id_for_subject(Some("https://accounts.google.com"), &"y".repeat(255)).to_string()
    );
}

async fn me_of(app: &TestApp, token: &str) -> (u16, String) {
    let (status, body) = me(app, token).await;
    (
        status,
        body["data"]["me"]["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}
